// Test-only: the torch bindings of the three kernels in one host-emulation extension, as submodules
// bias_act, upfirdn2d and filtered_lrelu (the torch headers are parsed once instead of three times).
// The kernels themselves are compiled in *_emu.cpp against the stand-in runtime of this folder.

#include <torch/extension.h>

#pragma push_macro("PYBIND11_MODULE")
#pragma push_macro("TORCH_EXTENSION_NAME")
#undef PYBIND11_MODULE
#undef TORCH_EXTENSION_NAME
#define PYBIND11_MODULE(name, variable) static void name(pybind11::module_& variable)

#define TORCH_EXTENSION_NAME register_bias_act
#include "bias_act_cuda.cpp"
#undef TORCH_EXTENSION_NAME
#define TORCH_EXTENSION_NAME register_upfirdn2d
#include "upfirdn2d_cuda.cpp"
#undef TORCH_EXTENSION_NAME
#define TORCH_EXTENSION_NAME register_filtered_lrelu
#include "filtered_lrelu_cuda.cpp"
#undef TORCH_EXTENSION_NAME

#pragma pop_macro("TORCH_EXTENSION_NAME")
#pragma pop_macro("PYBIND11_MODULE")

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    auto bias_act = m.def_submodule("bias_act");
    register_bias_act(bias_act);
    auto upfirdn2d = m.def_submodule("upfirdn2d");
    register_upfirdn2d(upfirdn2d);
    auto filtered_lrelu = m.def_submodule("filtered_lrelu");
    register_filtered_lrelu(filtered_lrelu);
}

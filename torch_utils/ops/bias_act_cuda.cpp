// Torch binding of the bias_act kernel (bias_act.cu).

#include "binding_common.h"
#include "bias_act.h"

namespace {

// out = f^(order)(ref + b) (times dy for order >= 1); see bias_act.h. All tensors on one device,
// one dtype; `ref` any dense layout (dy and out follow it).
torch::Tensor bias_act(torch::Tensor ref, std::optional<torch::Tensor> b, std::optional<torch::Tensor> dy,
                       int64_t order, int64_t dim, int64_t act, double alpha, double gain, double clamp,
                       bool ref_is_y) {
    OPS_CHECK_DEVICE(ref);
    const bool half = ops_binding::is_half(ref, "bias_act");
    TORCH_CHECK(order >= 0 && order <= 2, "bias_act: order must be 0, 1 or 2");
    TORCH_CHECK(act >= kBiasActLinear && act <= kBiasActSwish, "bias_act: unknown activation ", act);
    TORCH_CHECK(!ref_is_y || (order == 1 && (act == kBiasActLinear || act == kBiasActRelu || act == kBiasActLrelu)),
                "bias_act: the derivative can be read from y only for linear, relu and lrelu");
    if (!ref.is_non_overlapping_and_dense()) ref = ref.contiguous();

    BiasActParams p{};
    p.bias_stride = 1;
    p.channels = 1;
    torch::Tensor bc;
    if (b.has_value() && b->defined() && !ref_is_y) {
        TORCH_CHECK(dim >= 0 && dim < ref.dim(), "bias_act: dim out of range");
        TORCH_CHECK(b->dim() == 1 && b->size(0) == ref.size(dim), "bias_act: b must have shape [x.shape[dim]]");
        TORCH_CHECK(b->device() == ref.device() && b->scalar_type() == ref.scalar_type(),
                    "bias_act: b must have the device and dtype of x");
        bc = b->contiguous();
        p.b = bc.data_ptr();
        p.channels = ref.size(dim);
        p.bias_stride = ref.size(dim) > 1 ? ref.stride(dim) : 1;
    }
    torch::Tensor dyc;
    if (order > 0) {
        TORCH_CHECK(dy.has_value() && dy->defined(), "bias_act: dy is needed for order ", order);
        TORCH_CHECK(dy->sizes() == ref.sizes() && dy->device() == ref.device() &&
                    dy->scalar_type() == ref.scalar_type(), "bias_act: dy must match x in shape, device and dtype");
        dyc = dy->strides() == ref.strides() ? *dy : torch::empty_like(ref).copy_(*dy);
        p.dy = dyc.data_ptr();
    }
    torch::Tensor out = torch::empty_like(ref);
    TORCH_CHECK(out.strides() == ref.strides() && (order == 0 || dyc.strides() == ref.strides()),
                "bias_act: unexpected memory layout");
    p.ref = ref.data_ptr();
    p.out = out.data_ptr();
    p.numel = ref.numel();
    p.act = static_cast<int>(act);
    p.order = static_cast<int>(order);
    p.ref_is_y = ref_is_y ? 1 : 0;
    p.alpha = static_cast<float>(alpha);
    p.gain = static_cast<float>(gain);
    p.clamp = static_cast<float>(clamp);
    OPS_DEVICE_GUARD(ref);
    cudaError_t err = bias_act_launch(p, half, OPS_STREAM());
    OPS_CHECK_LAUNCH(err, "bias_act");
    return out;
}

} // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("bias_act", &bias_act, "bias, activation, gain, clamp and their derivatives (see bias_act.h)",
          pybind11::arg("ref"), pybind11::arg("b"), pybind11::arg("dy"), pybind11::arg("order"), pybind11::arg("dim"),
          pybind11::arg("act"), pybind11::arg("alpha"), pybind11::arg("gain"), pybind11::arg("clamp"),
          pybind11::arg("ref_is_y"));
}

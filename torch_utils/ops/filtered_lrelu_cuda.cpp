// Torch binding of the filtered_lrelu kernels (filtered_lrelu.cu).

#include "binding_common.h"
#include "filtered_lrelu.h"

namespace {

struct FilterInfo {
    torch::Tensor f;
    int taps;
    bool is_2d;
};

FilterInfo filter_info(const torch::Tensor& f, const torch::Tensor& x, const char* what) {
    FilterInfo info;
    info.f = ops_binding::filter_arg(f, x, what);
    info.is_2d = info.f.dim() == 2 && info.f.numel() > 1;
    if (info.f.dim() == 2)
        TORCH_CHECK(info.f.size(0) == info.f.size(1), what, ": the fused kernel takes square 2-D filters");
    info.taps = ops_binding::checked_int(info.f.size(0), "filter size");
    return info;
}

// Codes tensor [N, C, rows, ceil(cols / 4)] uint8 on x's device, checked.
void check_codes(const torch::Tensor& s, const torch::Tensor& x, int64_t rows, int64_t cols) {
    TORCH_CHECK(s.device() == x.device() && s.scalar_type() == torch::kUInt8 && s.is_contiguous(),
                "filtered_lrelu: codes must be a contiguous uint8 tensor on the device of x");
    TORCH_CHECK(s.dim() == 4 && s.size(0) == x.size(0) && s.size(1) == x.size(1) && s.size(2) == rows &&
                s.size(3) == (cols + 3) / 4, "filtered_lrelu: codes tensor of the wrong shape");
}

bool fused_supported(int64_t up, int64_t down, int64_t fu_taps, int64_t fd_taps, bool fu_2d, bool fd_2d) {
    return filtered_lrelu_fused_supported(static_cast<int>(up), static_cast<int>(down), static_cast<int>(fu_taps),
                                          static_cast<int>(fd_taps), fu_2d, fd_2d);
}

// One fused pass (see filtered_lrelu.h). x [N, C, H, W]; fu, fd float32 [taps] or [taps, taps];
// b [C] or None; codes_in [N, C, s_h, ceil(s_w / 4)] uint8 for mode 2. Returns (y, codes_out),
// codes_out [N, C, T_h, ceil(T_w / 4)] for mode 1 and an empty tensor otherwise.
std::tuple<torch::Tensor, torch::Tensor> fused(torch::Tensor x, torch::Tensor fu, torch::Tensor fd,
                                               std::optional<torch::Tensor> b, std::optional<torch::Tensor> codes_in,
                                               int64_t up, int64_t down, int64_t pad_x0, int64_t pad_x1,
                                               int64_t pad_y0, int64_t pad_y1, int64_t s_w, int64_t s_h,
                                               int64_t s_off_x, int64_t s_off_y, double up_gain, double down_gain,
                                               double gain, double slope, double clamp, bool flip, int64_t mode) {
    OPS_CHECK_DEVICE(x);
    const bool half = ops_binding::is_half(x, "filtered_lrelu");
    TORCH_CHECK(x.dim() == 4, "filtered_lrelu: x must be [N, C, H, W]");
    TORCH_CHECK(mode >= 0 && mode <= 2, "filtered_lrelu: mode must be 0, 1 or 2");
    TORCH_CHECK(up >= 1 && down >= 1, "filtered_lrelu: up and down must be >= 1");
    FilterInfo u = filter_info(fu, x, "filtered_lrelu: fu"), d = filter_info(fd, x, "filtered_lrelu: fd");
    TORCH_CHECK(fused_supported(up, down, u.taps, d.taps, u.is_2d, d.is_2d),
                "filtered_lrelu: no fused kernel for up ", up, ", down ", down, ", filters ", u.taps, " / ", d.taps);
    x = x.contiguous();
    const int64_t t_w = x.size(3) * up + pad_x0 + pad_x1 - u.taps + 1;
    const int64_t t_h = x.size(2) * up + pad_y0 + pad_y1 - u.taps + 1;
    const int64_t out_w = ops_binding::floor_div(t_w - d.taps, down) + 1;
    const int64_t out_h = ops_binding::floor_div(t_h - d.taps, down) + 1;
    TORCH_CHECK(t_w >= 1 && t_h >= 1 && out_w >= 1 && out_h >= 1, "filtered_lrelu: the output would be empty");

    FilteredLReluParams p{};
    torch::Tensor bc, codes_out, codes;
    if (b.has_value() && b->defined() && mode != 2) {
        TORCH_CHECK(b->dim() == 1 && b->size(0) == x.size(1) && b->device() == x.device(),
                    "filtered_lrelu: b must be [C] on the device of x");
        bc = b->to(x.scalar_type()).contiguous();
        p.b = bc.data_ptr();
    }
    if (mode == 2) {
        TORCH_CHECK(codes_in.has_value() && codes_in->defined(), "filtered_lrelu: mode 2 needs codes");
        check_codes(*codes_in, x, s_h, s_w);
        codes = *codes_in;
        p.signs_in = codes.data_ptr<uint8_t>();
    }
    OPS_DEVICE_GUARD(x);
    torch::Tensor y = torch::empty({x.size(0), x.size(1), out_h, out_w}, x.options());
    if (mode == 1) {
        codes_out = torch::zeros({x.size(0), x.size(1), t_h, (t_w + 3) / 4}, x.options().dtype(torch::kUInt8));
        p.signs_out = codes_out.data_ptr<uint8_t>();
    } else {
        codes_out = torch::empty({0}, x.options().dtype(torch::kUInt8));
    }
    if (y.numel() == 0) return {y, codes_out};
    TORCH_CHECK(x.numel() > 0, "filtered_lrelu: empty input");
    p.x = x.data_ptr();
    p.y = y.data_ptr();
    p.fu = u.f.data_ptr<float>();
    p.fd = d.f.data_ptr<float>();
    p.planes = x.size(0) * x.size(1);
    p.channels = ops_binding::checked_int(x.size(1), "channels");
    p.in_w = ops_binding::checked_int(x.size(3), "width");
    p.in_h = ops_binding::checked_int(x.size(2), "height");
    p.out_w = ops_binding::checked_int(out_w, "output width");
    p.out_h = ops_binding::checked_int(out_h, "output height");
    p.t_w = ops_binding::checked_int(t_w, "intermediate width");
    p.t_h = ops_binding::checked_int(t_h, "intermediate height");
    p.pad_x0 = ops_binding::checked_int(pad_x0, "padding");
    p.pad_y0 = ops_binding::checked_int(pad_y0, "padding");
    p.s_w = ops_binding::checked_int(s_w, "code grid width");
    p.s_h = ops_binding::checked_int(s_h, "code grid height");
    p.s_off_x = ops_binding::checked_int(s_off_x, "code offset");
    p.s_off_y = ops_binding::checked_int(s_off_y, "code offset");
    p.up_gain = static_cast<float>(up_gain);
    p.down_gain = static_cast<float>(down_gain);
    p.gain = static_cast<float>(gain);
    p.slope = static_cast<float>(slope);
    p.clamp = static_cast<float>(clamp);
    p.flip = flip ? 1 : 0;
    p.mode = static_cast<int>(mode);
    cudaError_t err = filtered_lrelu_fused_launch(p, static_cast<int>(up), static_cast<int>(down), u.taps, d.taps,
                                                  u.is_2d, d.is_2d, half, OPS_STREAM());
    OPS_CHECK_LAUNCH(err, "filtered_lrelu");
    return {y, codes_out};
}

// The activation step on a materialised intermediate x [N, C, H, W] (the generic path).
std::tuple<torch::Tensor, torch::Tensor> act(torch::Tensor x, std::optional<torch::Tensor> codes_in, int64_t s_w,
                                             int64_t s_h, int64_t s_off_x, int64_t s_off_y, double gain, double slope,
                                             double clamp, int64_t mode) {
    OPS_CHECK_DEVICE(x);
    const bool half = ops_binding::is_half(x, "filtered_lrelu");
    TORCH_CHECK(x.dim() == 4, "filtered_lrelu: x must be [N, C, H, W]");
    TORCH_CHECK(mode >= 0 && mode <= 2, "filtered_lrelu: mode must be 0, 1 or 2");
    x = x.contiguous();
    FilteredLReluActParams p{};
    torch::Tensor codes;
    if (mode == 2) {
        TORCH_CHECK(codes_in.has_value() && codes_in->defined(), "filtered_lrelu: mode 2 needs codes");
        check_codes(*codes_in, x, s_h, s_w);
        codes = *codes_in;
        p.signs_in = codes.data_ptr<uint8_t>();
    }
    OPS_DEVICE_GUARD(x);
    torch::Tensor y = torch::empty_like(x);
    torch::Tensor codes_out = mode == 1
        ? torch::empty({x.size(0), x.size(1), x.size(2), (x.size(3) + 3) / 4}, x.options().dtype(torch::kUInt8))
        : torch::empty({0}, x.options().dtype(torch::kUInt8));
    if (x.numel() == 0) return {y, codes_out};
    p.x = x.data_ptr();
    p.y = y.data_ptr();
    if (mode == 1) p.signs_out = codes_out.data_ptr<uint8_t>();
    p.planes = x.size(0) * x.size(1);
    p.h = ops_binding::checked_int(x.size(2), "height");
    p.w = ops_binding::checked_int(x.size(3), "width");
    p.s_w = ops_binding::checked_int(s_w, "code grid width");
    p.s_h = ops_binding::checked_int(s_h, "code grid height");
    p.s_off_x = ops_binding::checked_int(s_off_x, "code offset");
    p.s_off_y = ops_binding::checked_int(s_off_y, "code offset");
    p.gain = static_cast<float>(gain);
    p.slope = static_cast<float>(slope);
    p.clamp = static_cast<float>(clamp);
    p.mode = static_cast<int>(mode);
    cudaError_t err = filtered_lrelu_act_launch(p, half, OPS_STREAM());
    OPS_CHECK_LAUNCH(err, "filtered_lrelu");
    return {y, codes_out};
}

} // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("fused_supported", &fused_supported, "whether a fused kernel exists for the configuration");
    m.def("fused", &fused, "one fused filtered_lrelu pass (see filtered_lrelu.h)", pybind11::arg("x"),
          pybind11::arg("fu"), pybind11::arg("fd"), pybind11::arg("b"), pybind11::arg("codes"), pybind11::arg("up"),
          pybind11::arg("down"), pybind11::arg("pad_x0"), pybind11::arg("pad_x1"), pybind11::arg("pad_y0"),
          pybind11::arg("pad_y1"), pybind11::arg("s_w"), pybind11::arg("s_h"), pybind11::arg("s_off_x"),
          pybind11::arg("s_off_y"), pybind11::arg("up_gain"), pybind11::arg("down_gain"), pybind11::arg("gain"),
          pybind11::arg("slope"), pybind11::arg("clamp"), pybind11::arg("flip"), pybind11::arg("mode"));
    m.def("act", &act, "the activation step alone (generic path)", pybind11::arg("x"), pybind11::arg("codes"),
          pybind11::arg("s_w"), pybind11::arg("s_h"), pybind11::arg("s_off_x"), pybind11::arg("s_off_y"),
          pybind11::arg("gain"), pybind11::arg("slope"), pybind11::arg("clamp"), pybind11::arg("mode"));
}

// Torch binding of the upfirdn2d kernel (upfirdn2d.cu).

#include "binding_common.h"
#include "upfirdn2d.h"

namespace {

int64_t out_size(int64_t in, int64_t up, int64_t pad0, int64_t pad1, int64_t taps, int64_t down) {
    return ops_binding::floor_div(in * up + pad0 + pad1 - taps, down) + 1;
}

void run_pass(const torch::Tensor& x, torch::Tensor& y, const torch::Tensor& f, int f_w, int f_h, int up_x, int up_y,
              int down_x, int down_y, int pad_x0, int pad_y0, bool flip, float gain) {
    UpFirDn2dParams p{};
    p.x = x.data_ptr();
    p.y = y.data_ptr();
    p.f = f.data_ptr<float>();
    p.planes = x.size(0) * x.size(1);
    p.in_h = ops_binding::checked_int(x.size(2), "height");
    p.in_w = ops_binding::checked_int(x.size(3), "width");
    p.out_h = ops_binding::checked_int(y.size(2), "output height");
    p.out_w = ops_binding::checked_int(y.size(3), "output width");
    p.up_x = up_x; p.up_y = up_y;
    p.down_x = down_x; p.down_y = down_y;
    p.pad_x0 = pad_x0; p.pad_y0 = pad_y0;
    p.f_w = f_w; p.f_h = f_h;
    p.flip = flip ? 1 : 0;
    p.gain = gain;
    const int x_type = x.scalar_type() == torch::kHalf ? 1 : 0;
    const int y_type = y.scalar_type() == torch::kHalf ? 1 : 0;
    cudaError_t err = upfirdn2d_launch(p, x_type, y_type, OPS_STREAM());
    OPS_CHECK_LAUNCH(err, "upfirdn2d");
}

// x [N, C, H, W] (float32 / float16), f float32 [taps] (separable) or [fh, fw]. See upfirdn2d.h.
torch::Tensor upfirdn2d(torch::Tensor x, torch::Tensor f, int64_t up_x, int64_t up_y, int64_t down_x, int64_t down_y,
                        int64_t pad_x0, int64_t pad_x1, int64_t pad_y0, int64_t pad_y1, bool flip, double gain) {
    OPS_CHECK_DEVICE(x);
    ops_binding::is_half(x, "upfirdn2d");
    TORCH_CHECK(x.dim() == 4, "upfirdn2d: x must be [N, C, H, W]");
    TORCH_CHECK(up_x >= 1 && up_y >= 1 && down_x >= 1 && down_y >= 1, "upfirdn2d: up and down must be >= 1");
    f = ops_binding::filter_arg(f, x, "upfirdn2d: f");
    x = x.contiguous();
    const bool separable = f.dim() == 1;
    const int64_t fw = separable ? f.size(0) : f.size(1);
    const int64_t fh = f.size(0);
    const int64_t out_w = out_size(x.size(3), up_x, pad_x0, pad_x1, fw, down_x);
    const int64_t out_h = out_size(x.size(2), up_y, pad_y0, pad_y1, fh, down_y);
    TORCH_CHECK(out_w >= 1 && out_h >= 1, "upfirdn2d: the output would be empty");
    const int ux = ops_binding::checked_int(up_x, "up"), uy = ops_binding::checked_int(up_y, "up");
    const int dx = ops_binding::checked_int(down_x, "down"), dy = ops_binding::checked_int(down_y, "down");
    const int px0 = ops_binding::checked_int(pad_x0, "padding"), py0 = ops_binding::checked_int(pad_y0, "padding");
    ops_binding::checked_int(pad_x1, "padding");
    ops_binding::checked_int(pad_y1, "padding");
    const int fwi = ops_binding::checked_int(fw, "filter size"), fhi = ops_binding::checked_int(fh, "filter size");
    OPS_DEVICE_GUARD(x);
    torch::Tensor y = torch::empty({x.size(0), x.size(1), out_h, out_w}, x.options());
    if (y.numel() == 0) return y;
    if (x.numel() == 0) return y.zero_();  // nothing but padding
    if (!separable) {
        run_pass(x, y, f, fwi, fhi, ux, uy, dx, dy, px0, py0, flip, static_cast<float>(gain));
    } else {
        // Along x into a float32 intermediate, then along y (the gain goes into the second pass).
        torch::Tensor t = torch::empty({x.size(0), x.size(1), x.size(2), out_w}, x.options().dtype(torch::kFloat));
        run_pass(x, t, f, fwi, 1, ux, 1, dx, 1, px0, 0, flip, 1.0f);
        run_pass(t, y, f, 1, fhi, 1, uy, 1, dy, 0, py0, flip, static_cast<float>(gain));
    }
    return y;
}

} // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("upfirdn2d", &upfirdn2d, "upsample, pad, FIR filter, downsample (see upfirdn2d.h)", pybind11::arg("x"),
          pybind11::arg("f"), pybind11::arg("up_x"), pybind11::arg("up_y"), pybind11::arg("down_x"),
          pybind11::arg("down_y"), pybind11::arg("pad_x0"), pybind11::arg("pad_x1"), pybind11::arg("pad_y0"),
          pybind11::arg("pad_y1"), pybind11::arg("flip"), pybind11::arg("gain"));
}

"""Fast inference with a trained generator: `prepare_generator(G, device, precision)`.

On a CPU the reference networks run float32 PyTorch ops everywhere (about 30 s per 256x256
StyleGAN3-R frame with the published code's CPU fallback). The prepared generator computes the
same images with, per synthesis layer,

- the modulated convolution rewritten with one weight shared by the whole batch: the style scales
  the input (fused into the previous layer's kernel as an output scale), the demodulation scales
  the output (fused into this layer's kernel as an input scale), so the weight is normalised and
  converted once, when the generator is prepared;
- that convolution in float32 or bfloat16 through oneDNN (bfloat16 where the CPU has the dot-product
  units: AVX512_BF16 / AMX), accumulating in float32;
- the C++ kernel `torch_utils/ops/filtered_lrelu_cpu.cpp` for everything after the convolution
  (StyleGAN3: bias, upsampling, leaky ReLU, downsampling; StyleGAN2: the resampling filter, noise,
  bias, leaky ReLU and clamp), which computes in float32 and writes the next convolution's input
  directly in its dtype;
- two reused work buffers (fresh multi-megabyte tensors cost a page fault per 4 KiB on first touch).

Precision: 'fp32' matches the reference networks to about 1e-5 (relative); 'bf16' rounds the
convolution operands to bfloat16 (PSNR >= 40 dB against float32, checked by tests/test_cpu_fast.py
and measured by bench/cpu_render.py); 'auto' takes bf16 where the CPU has native bfloat16 units,
else fp32. On CUDA the network is returned as loaded (its own float16 layers and CUDA kernels).

Only inference is rewritten: `update_emas=True` (training) runs the reference network, and networks
of other kinds run their own code with the CPU kernels enabled (`cpu_kernels.kernels_enabled`).
The prepared generator holds precomputed weights: prepare it after the weights are final (the
StyleGAN3 input transform is read at every call, so `--translate/--rotate` still work).

`count_flops(G)` counts the floating-point operations of one synthesised frame.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import dnnlib
from torch_utils.ops import cpu_kernels

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")

#----------------------------------------------------------------------------
# Capabilities.

def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512_BF16 or AMX-BF16)."""
    flags = cpu_kernels.cpu_flags()
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' | 'fp32' | 'bf16' -> 'fp32' or 'bf16' for `device` (CUDA: always 'fp32', i.e. as loaded)."""
    if precision not in PRECISIONS:
        raise dnnlib.UserError(f"--precision={precision!r}: use one of {', '.join(PRECISIONS)}")
    if device.type != "cpu":
        return "fp32"
    if precision == "auto":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return precision


def _linear_pointwise_ok() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")

#----------------------------------------------------------------------------
# Work buffers and convolutions.

class _Workspace:
    """Two flat buffers per dtype, reused by every layer: the convolution output and the kernel output."""

    def __init__(self):
        self._bufs: dict[tuple[str, torch.dtype], torch.Tensor] = {}

    def get(self, slot: str, shape: list[int], dtype: torch.dtype) -> torch.Tensor:
        n = int(np.prod(shape))
        buf = self._bufs.get((slot, dtype))
        if buf is None or buf.numel() < n:
            buf = torch.empty(n, dtype=dtype)
            self._bufs[(slot, dtype)] = buf
        return buf[:n].view(shape)


def _conv1x1(w: torch.Tensor, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """`w` `[O, I]` times every sample of `x` `[N, I, H, W]` -> `[N, O, H, W]` (same dtype), written into
    `out` (except for one float32 sample, returned as oneDNN allocates it)."""
    n, i, h, wd = x.shape
    xf = x.reshape(n, i, h * wd)
    if x.dtype == torch.float32 and _linear_pointwise_ok():
        # oneDNN's float32 GEMM (AVX-512 where present); torch.mm takes MKL's slower path on AMD CPUs.
        ys = [torch.ops.mkldnn._linear_pointwise(w, xf[k].t(), None, "none", [], "") for k in range(n)]
        if n == 1:
            return ys[0].view(1, w.shape[0], h, wd)
        return torch.stack(ys, out=out.view(n, w.shape[0], h * wd)).view(out.shape)
    of = out.view(n, w.shape[0], h * wd)
    for k in range(n):
        torch.mm(w, xf[k], out=of[k])
    return out

#----------------------------------------------------------------------------
# StyleGAN3.

class _SG3Layer:
    """One synthesis layer of `training.networks_stylegan3`, prepared for inference."""

    def __init__(self, layer: torch.nn.Module, cdtype: torch.dtype):
        self.is_torgb = bool(layer.is_torgb)
        self.k = int(layer.conv_kernel)
        self.in_ch, self.out_ch = int(layer.in_channels), int(layer.out_channels)
        aff = layer.affine
        self.affine_w = (aff.weight.detach().float() * aff.weight_gain).contiguous()       # [I, w_dim]
        self.affine_b = (aff.bias.detach().float() * aff.bias_gain).contiguous()           # [I]
        w = layer.weight.detach().float()
        if not self.is_torgb:  # unit-RMS kernels per output channel (cancels in the demodulation)
            w = w * w.square().mean([1, 2, 3], keepdim=True).rsqrt()
        if self.is_torgb:  # few FLOPs, and its rounding would go straight into the image: float32
            cdtype = torch.float32
        self.w = (w[:, :, 0, 0] if self.k == 1 else w).to(cdtype).contiguous()
        # Demodulate with the weight as the convolution sees it (rounded to cdtype): every output
        # channel keeps unit gain, whatever the rounding.
        self.wsq = self.w.float().reshape(w.shape).square().sum([2, 3]).contiguous()          # [O, I]
        self.input_gain = float(layer.magnitude_ema.detach().float().rsqrt())
        self.style_gain = 1 / math.sqrt(self.in_ch * self.k ** 2) if self.is_torgb else 1.0
        self.bias = layer.bias.detach().float().contiguous()
        self.in_size = (int(layer.in_size[1]), int(layer.in_size[0]))
        self.out_size = (int(layer.out_size[1]), int(layer.out_size[0]))
        self.conv_size = (self.in_size[0] + self.k - 1, self.in_size[1] + self.k - 1)
        self.clamp = layer.conv_clamp
        self.plan = None
        if not self.is_torgb:
            self.plan = cpu_kernels.prepare_filtered_lrelu(
                layer.up_filter, layer.down_filter, int(layer.up_factor), int(layer.down_factor),
                tuple(layer.padding), math.sqrt(2), 0.2, layer.conv_clamp, False, self.conv_size)
            assert self.plan.out_size(*self.conv_size) == self.out_size

    def styles(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(input scale `[N, I]`: style times input gain, demodulation `[N, O]` or None)."""
        s = torch.addmm(self.affine_b, w, self.affine_w.t())
        if self.is_torgb:
            return s * (self.style_gain * self.input_gain), None
        s = s * s.square().mean().rsqrt()  # unit-RMS styles over the batch, as the reference
        d = (s.square() @ self.wsq.t() + 1e-8).rsqrt()
        return s * self.input_gain, d


class FastSynthesisSG3(torch.nn.Module):
    """`G.synthesis` of a StyleGAN3 generator, inference only (see the module docstring)."""

    FP32_TAIL = 2  # layers before ToRGB kept in float32 in bf16 mode

    def __init__(self, synthesis: torch.nn.Module, mod: Any, precision: str):
        super().__init__()
        self.ref = synthesis
        self.mod = mod
        self.precision = precision
        self.cdtype = torch.bfloat16 if precision == "bf16" else torch.float32
        # The last layers before ToRGB (full resolution, few channels, a small share of the FLOPs) stay
        # float32 even in bf16 mode: their weight rounding shows most directly in the image.
        names = synthesis.layer_names
        self.layers = [_SG3Layer(getattr(synthesis, name), self.cdtype if i < len(names) - 1 - self.FP32_TAIL
                                 else torch.float32) for i, name in enumerate(names)]
        self.w_dim, self.num_ws = synthesis.w_dim, synthesis.num_ws
        self.img_resolution, self.img_channels = synthesis.img_resolution, synthesis.img_channels
        inp = synthesis.input
        self.in_weight = (inp.weight.detach().float() / np.sqrt(inp.channels)).contiguous()  # [C, C]
        self.ws = _Workspace()

    @property
    def input(self) -> torch.nn.Module:
        return self.ref.input  # users set input.transform; it is read at every call

    def _input(self, w: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """SynthesisInput in NCHW, times `scale` `[N, C]` (the first layer's input scale), in cdtype."""
        inp = self.ref.input
        n = w.shape[0]
        t = inp.affine(w)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        cos, sin, tx, ty = t.unbind(dim=1)
        one, zero = torch.ones_like(cos), torch.zeros_like(cos)
        inv_rot = torch.stack([cos, -sin, zero, sin, cos, zero, zero, zero, one], dim=1).reshape(n, 3, 3)
        inv_shift = torch.stack([one, zero, -tx, zero, one, -ty, zero, zero, one], dim=1).reshape(n, 3, 3)
        # (3x3 products written out: batched matmuls of tiny matrices cost milliseconds on the CPU)
        mm3 = lambda p, q: (p[:, :, :, None] * q[:, None, :, :]).sum(2)  # noqa: E731
        m = mm3(mm3(inv_rot, inv_shift), inp.transform.float().unsqueeze(0).expand(n, 3, 3))
        base = inp.freqs.unsqueeze(0)                                                 # [1, C, 2]
        phases = inp.phases.unsqueeze(0) + base[:, :, 0] * m[:, None, 0, 2] + base[:, :, 1] * m[:, None, 1, 2]
        freqs = base[:, :, :, None] * m[:, None, :2, :2]                              # [N, C, 2 (in), 2 (out)]
        freqs = freqs.sum(2)                                                          # [N, C, 2]
        amplitudes = (1 - (freqs.norm(dim=2) - inp.bandwidth) / (inp.sampling_rate / 2 - inp.bandwidth)).clamp(0, 1)
        # sin(2 pi (fx x + fy y + phase)) = sin(a) cos(b) + cos(a) sin(b) with a = 2 pi (fx x + phase) and
        # b = 2 pi fy y: sines of small per-axis tables, then two products per pixel.
        xs, ys = inp.sample_coords(w.device)
        a = (freqs[:, :, 0, None] * xs + phases[:, :, None]) * (np.pi * 2)            # [N, C, W]
        b = freqs[:, :, 1, None] * ys * (np.pi * 2)                                     # [N, C, H]
        amp = amplitudes[:, :, None]
        feats = (b.cos() * amp)[:, :, :, None] * a.sin()[:, :, None, :]                # [N, C, H, W]
        feats.addcmul_((b.sin() * amp)[:, :, :, None], a.cos()[:, :, None, :])
        C, H, W = feats.shape[1:]
        x = torch.empty([n, C, H, W])
        for k in range(n):  # channel mixing (float32), with the first layer's input scale folded into the rows
            x[k:k + 1] = _conv1x1(self.in_weight * scale[k, :, None], feats[k:k + 1], x[k:k + 1])
        return x.to(self.layers[0].w.dtype)

    @torch.no_grad()
    def _forward(self, ws: torch.Tensor) -> torch.Tensor:
        ws = ws.to(torch.float32)
        n = ws.shape[0]
        scales = [layer.styles(ws[:, i + 1]) for i, layer in enumerate(self.layers)]
        x = self._input(ws[:, 0], scales[0][0])
        for i, layer in enumerate(self.layers):
            if layer.is_torgb:  # x carries this layer's input scale already
                y = torch.empty([n, layer.out_ch, *layer.conv_size])
                y = _conv1x1(layer.w, x.float(), y).add_(layer.bias[None, :, None, None])
                if layer.clamp is not None:
                    y.clamp_(-layer.clamp, layer.clamp)
                break
            hc, wc = layer.conv_size
            if x.dtype != layer.w.dtype:
                x = x.to(layer.w.dtype)
            y = self.ws.get("conv", [n, layer.out_ch, hc, wc], layer.w.dtype)
            if layer.k == 1:
                y = _conv1x1(layer.w, x, y)
            else:
                y = F.conv2d(x, layer.w, padding=layer.k - 1)
            nxt = scales[i + 1][0] if i + 1 < len(self.layers) else None
            xdtype = self.layers[i + 1].w.dtype
            out = self.ws.get("act", [n, layer.out_ch, *layer.out_size], xdtype)
            x = cpu_kernels.run_filtered_lrelu(self.mod, y, layer.plan, b=layer.bias, in_scale=scales[i][1],
                                               out_scale=nxt, out_dtype=xdtype, out=out)
        if self.ref.output_scale != 1:
            y = y * self.ref.output_scale
        return y

    def forward(self, ws: torch.Tensor, **layer_kwargs) -> torch.Tensor:
        """ws `[N, num_ws, w_dim]` -> `[N, img_channels, H, W]` float32 (about [-1, 1]). Keywords as the
        reference (`noise_mode` and `force_fp32` change nothing here; `update_emas=True` runs the reference)."""
        if layer_kwargs.get("update_emas", False) or ws.device.type != "cpu":
            return self.ref(ws, **layer_kwargs)
        return self._forward(ws)

#----------------------------------------------------------------------------
# StyleGAN2.

def _up_pad(fw: int, kw: int, up: int, padding: int) -> tuple[int, int]:
    """Padding of the filter that follows a stride-`up` transposed convolution in `conv2d_resample`
    (`[x0, x1]`; the same for y with square kernels)."""
    p0 = padding + (fw + up - 1) // 2 - (kw - 1)
    p1 = padding + (fw - up) // 2 - (kw - up)
    return p0, p1


class _SG2Layer:
    """One `SynthesisLayer` (3x3 modulated convolution, noise, bias, leaky ReLU) prepared for inference."""

    def __init__(self, layer: torch.nn.Module, cdtype: torch.dtype, gain: float = 1):
        self.up = int(layer.up)
        self.in_ch, self.out_ch = int(layer.in_channels), int(layer.out_channels)
        self.res = int(layer.resolution)
        aff = layer.affine
        self.affine_w = (aff.weight.detach().float() * aff.weight_gain).contiguous()
        self.affine_b = (aff.bias.detach().float() * aff.bias_gain).contiguous()
        self.weight = layer.weight.detach().float().contiguous()                     # [O, I, 3, 3]
        if self.up > 1:  # conv_transpose2d layout [I, O, kh, kw]
            self.weight = self.weight.transpose(0, 1).contiguous()
        self.wshared = self.weight.to(cdtype)                                         # for inputs scaled by the style
        self.wsq = layer.weight.detach().float().square().sum([2, 3]).contiguous()   # [O, I]
        self.cdtype = cdtype
        self.kw = int(self.weight.shape[3])
        self.padding = int(layer.padding)
        self.bias = layer.bias.detach().float().contiguous()
        self.noise_const = None
        self.noise_strength = 0.0
        if layer.use_noise:
            self.noise_strength = float(layer.noise_strength.detach())
            self.noise_const = (layer.noise_const.detach().float() * self.noise_strength)[None].contiguous()
        if layer.activation != "lrelu":
            raise NotImplementedError(f"fast StyleGAN2 path: activation {layer.activation!r}")
        act_gain = float(layer.act_gain) * gain
        clamp = layer.conv_clamp * gain if layer.conv_clamp is not None else None
        f = layer.resample_filter
        if self.up == 1:
            self.plan = cpu_kernels.prepare_filtered_lrelu(None, None, 1, 1, (0, 0, 0, 0), act_gain, 0.2, clamp, False,
                                                           (self.res, self.res))
        else:
            fw = int(f.shape[-1])
            p0, p1 = _up_pad(fw, self.kw, self.up, self.padding)
            conv_res = (self.res // self.up - 1) * self.up + self.kw  # transposed convolution output
            kf = cpu_kernels._kernel_filters(f, False, self.up ** 2)
            self.plan = cpu_kernels.FilteredLReLUPlan(kf, cpu_kernels._kernel_filters(None, False, 1), 1, 1,
                                                      (p0, p1, p0, p1), act_gain, 0.2, -1.0 if clamp is None else clamp)
            assert self.plan.out_size(conv_res, conv_res) == (self.res, self.res)

    def styles(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = torch.addmm(self.affine_b, w, self.affine_w.t())
        return s, (s.square() @ self.wsq.t() + 1e-8).rsqrt()

    def modulate_weights(self, x: torch.Tensor) -> bool:
        """Whether scaling the weights per sample costs less than scaling the input `x` by the style."""
        return self.weight.numel() < x[0].numel()

    def __call__(self, mod: Any, x: torch.Tensor, s: torch.Tensor, d: torch.Tensor, noise_mode: str,
                 out: torch.Tensor, scaled: bool = False, out_scale: torch.Tensor | None = None) -> torch.Tensor:
        """x `[N, I, h, w]` (`scaled`: already multiplied by the style `s` `[N, I]`), demodulation `d` `[N, O]`
        -> `[N, O, res, res]` in cdtype, written into `out`, times `out_scale` `[N, O]` when given."""
        n = x.shape[0]
        noise = None
        if self.noise_const is not None and noise_mode == "const":
            noise = self.noise_const
        elif self.noise_const is not None and noise_mode == "random":
            noise = torch.randn([n, self.res, self.res]) * self.noise_strength

        def conv(xk: torch.Tensor, wk: torch.Tensor) -> torch.Tensor:
            if self.up == 1:
                return F.conv2d(xk, wk, padding=self.padding)
            return F.conv_transpose2d(xk, wk, stride=self.up)

        if x.dtype != self.cdtype:
            x = x.to(self.cdtype)
        in_scale = None
        if scaled or not self.modulate_weights(x):
            if not scaled:
                x = x * s[:, :, None, None].to(x.dtype)
            y = conv(x, self.wshared)  # one weight for the batch; demodulation in the kernel
            in_scale = d
        else:
            ys = []
            for k in range(n):  # one modulated (and demodulated) weight per sample
                sd = (s[k][:, None] * d[k][None, :]) if self.up > 1 else (d[k][:, None] * s[k][None, :])
                ys.append(conv(x[k:k + 1], (self.weight * sd[:, :, None, None]).to(self.cdtype)))
            y = ys[0] if n == 1 else torch.cat(ys)
        return cpu_kernels.run_filtered_lrelu(mod, y, self.plan, in_scale=in_scale, out_scale=out_scale,
                                              b_post=self.bias, noise=noise, out_dtype=self.cdtype, out=out)


class _SG2ToRGB:
    def __init__(self, layer: torch.nn.Module, cdtype: torch.dtype):
        aff = layer.affine
        self.affine_w = (aff.weight.detach().float() * aff.weight_gain).contiguous()
        self.affine_b = (aff.bias.detach().float() * aff.bias_gain).contiguous()
        self.weight_gain = float(layer.weight_gain)
        self.weight = layer.weight.detach().float()[:, :, 0, 0].contiguous()          # [3, C]
        self.bias = layer.bias.detach().float()
        self.clamp = layer.conv_clamp
        self.cdtype = cdtype

    def __call__(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        s = torch.addmm(self.affine_b, w, self.affine_w.t()) * self.weight_gain
        n = x.shape[0]
        x = x.to(self.cdtype)
        y = torch.empty([n, self.weight.shape[0], x.shape[2], x.shape[3]], dtype=x.dtype)
        for k in range(n):
            y[k:k + 1] = _conv1x1((self.weight * s[k][None, :]).to(self.cdtype), x[k:k + 1], y[k:k + 1])
        y = y.float().add_(self.bias[None, :, None, None])
        return y.clamp_(-self.clamp, self.clamp) if self.clamp is not None else y


class FastSynthesisSG2(torch.nn.Module):
    """`G.synthesis` of a StyleGAN2 generator ('skip' or 'orig' architecture), inference only."""

    FP32_MAX_RES = 32  # blocks up to this resolution stay float32 in bf16 mode

    def __init__(self, synthesis: torch.nn.Module, mod: Any, precision: str):
        super().__init__()
        self.ref = synthesis
        self.mod = mod
        self.cdtype = torch.bfloat16 if precision == "bf16" else torch.float32
        self.w_dim, self.num_ws = synthesis.w_dim, synthesis.num_ws
        self.img_resolution, self.img_channels = synthesis.img_resolution, synthesis.img_channels
        self.blocks = []
        for res in synthesis.block_resolutions:
            b = getattr(synthesis, f"b{res}")
            # In bf16 mode the low-resolution blocks (a few % of the FLOPs, but their rounding is upsampled
            # into the whole image) and ToRGB stay float32.
            cd = torch.float32 if res <= self.FP32_MAX_RES else self.cdtype
            self.blocks.append(dict(
                res=res, num_conv=b.num_conv, num_torgb=b.num_torgb,
                const=b.const.detach().float() if b.in_channels == 0 else None,
                conv0=_SG2Layer(b.conv0, cd) if b.in_channels != 0 else None,
                conv1=_SG2Layer(b.conv1, cd),
                torgb=_SG2ToRGB(b.torgb, torch.float32) if hasattr(b, "torgb") else None,
                up=cpu_kernels._kernel_filters(b.resample_filter, False, 4)))
        self.ws = _Workspace()

    @torch.no_grad()
    def _forward(self, ws: torch.Tensor, noise_mode: str) -> torch.Tensor:
        ws = ws.to(torch.float32)
        n = ws.shape[0]
        x = img = None
        w_idx = 0
        for i, blk in enumerate(self.blocks):
            res = blk["res"]
            wb = ws[:, w_idx:w_idx + blk["num_conv"] + blk["num_torgb"]].unbind(dim=1)
            w_idx += blk["num_conv"]
            k = 0
            s1, d1 = blk["conv1"].styles(wb[1 if blk["conv0"] is not None else 0])
            if blk["const"] is not None:
                x = (blk["const"][None] * s1[:, :, None, None]).to(self.cdtype)
            else:
                layer = blk["conv0"]
                s0, d0 = layer.styles(wb[k])
                k += 1
                out = self.ws.get("act0", [n, layer.out_ch, res, res], layer.cdtype)
                x = layer(self.mod, x, s0, d0, noise_mode, out, out_scale=s1)  # scaled for conv1 (its only reader)
            layer = blk["conv1"]
            k += 1
            out = self.ws.get("act1", [n, layer.out_ch, res, res], layer.cdtype)
            x = layer(self.mod, x, s1, d1, noise_mode, out, scaled=True)
            if img is not None:
                plan = cpu_kernels.FilteredLReLUPlan(blk["up"], cpu_kernels._kernel_filters(None, False, 1), 2, 1,
                                                     (2, 1, 2, 1), 1.0, 1.0, -1.0)
                img = cpu_kernels.run_filtered_lrelu(self.mod, img, plan)
            if blk["torgb"] is not None:
                y = blk["torgb"](x, wb[k])
                img = img.add_(y) if img is not None else y
        return img

    def forward(self, ws: torch.Tensor, noise_mode: str = "random", force_fp32: bool = False,
                update_emas: bool = False, **block_kwargs) -> torch.Tensor:
        if update_emas or ws.device.type != "cpu" or block_kwargs:
            return self.ref(ws, noise_mode=noise_mode, force_fp32=force_fp32, update_emas=update_emas, **block_kwargs)
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"unknown noise_mode {noise_mode!r}")
        return self._forward(ws, noise_mode)

#----------------------------------------------------------------------------
# The prepared generator.

class PreparedGenerator(torch.nn.Module):
    """The generator interface (spec section 3) over a fast synthesis network. Its state dict is the
    original generator's, so identities computed from it (e.g. `training.pose_lstm.generator_identity`)
    are unchanged."""

    def __init__(self, G: torch.nn.Module, synthesis: torch.nn.Module | None, description: str):
        super().__init__()
        self.orig = G
        self.mapping = G.mapping
        self.synthesis = synthesis if synthesis is not None else G.synthesis
        self.description = description
        for name in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "num_ws"):
            setattr(self, name, getattr(G, name))
        self._kernels = synthesis is None  # generic path: G's own code with the CPU kernels

    def state_dict(self, *args, **kwargs):
        return self.orig.state_dict(*args, **kwargs)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None, truncation_psi: float = 1,
                truncation_cutoff: int | None = None, update_emas: bool = False, **synthesis_kwargs) -> torch.Tensor:
        if self._kernels:
            with cpu_kernels.kernels_enabled(True):
                return self.orig(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                                 update_emas=update_emas, **synthesis_kwargs)
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)


class _KernelsSynthesis(torch.nn.Module):
    """A synthesis network run by its own code with the CPU kernels enabled (networks of other kinds)."""

    def __init__(self, synthesis: torch.nn.Module):
        super().__init__()
        self.ref = synthesis
        for name in ("w_dim", "num_ws", "img_resolution", "img_channels"):
            setattr(self, name, getattr(synthesis, name))

    @property
    def input(self) -> torch.nn.Module:
        return self.ref.input

    def forward(self, ws: torch.Tensor, **kwargs) -> torch.Tensor:
        with cpu_kernels.kernels_enabled(True):
            return self.ref(ws, **kwargs)


def _kind(G: torch.nn.Module) -> str | None:
    syn = getattr(G, "synthesis", None)
    if type(syn).__module__ == "training.networks_stylegan3" and type(syn).__name__ == "SynthesisNetwork":
        return "stylegan3"
    if type(syn).__module__ == "training.networks_stylegan2" and type(syn).__name__ == "SynthesisNetwork":
        if all(getattr(syn, f"b{r}").architecture in ("skip", "orig") for r in syn.block_resolutions):
            return "stylegan2"
    return None


def prepare_generator(G: torch.nn.Module, device: torch.device | str = "cpu",
                      precision: str = "auto") -> tuple[torch.nn.Module, str]:
    """The fastest correct way to run `G` (spec section 3 interface, eval mode, on `device`) for inference.

    precision: 'auto' (bf16 on CPUs with native bfloat16 units, else fp32), 'fp32' or 'bf16'.
    Returns `(G_prepared, description)`: the generator to call instead of `G` (same interface; CUDA: `G`
    itself) and one line naming the path, for the log. Published pickles' classes are rebuilt as ours
    (`legacy.rebuild_network`) to reach the fast path; other networks keep their own code, with the CPU
    kernels enabled. Raises dnnlib.UserError for an unknown precision."""
    device = torch.device(device)
    prec = resolve_precision(precision, device)
    res = int(G.img_resolution)
    if device.type != "cpu":
        return G, f"Rendering {res}x{res} on {device}: the network as loaded (its float16 layers, CUDA kernels)"
    import legacy
    kind = _kind(G)
    if kind is None and legacy.can_rebuild(G):
        try:
            G = legacy.rebuild_network(G).eval().requires_grad_(False)
            kind = _kind(G)
        except (dnnlib.UserError, TypeError) as e:
            log.info("Could not rebuild %s as our class (%s); running its own code", type(G).__name__, e)
    mod = cpu_kernels.load()
    if mod is None:
        return G, (f"Rendering {res}x{res} on cpu: float32 reference PyTorch ops (the C++ kernel is unavailable: "
                   f"{cpu_kernels.plugin.error})")
    isa = cpu_kernels.isa()
    if kind is None:
        desc = (f"Rendering {res}x{res} on cpu: {type(G).__module__}.{type(G).__name__} with the fused C++ "
                f"filtered_lrelu/upfirdn2d kernel ({isa}), float32")
        return PreparedGenerator(G, _KernelsSynthesis(G.synthesis), desc), desc
    try:
        syn = (FastSynthesisSG3 if kind == "stylegan3" else FastSynthesisSG2)(G.synthesis, mod, prec)
    except NotImplementedError as e:
        log.info("No fast path for this network (%s); running its own code with the CPU kernels", e)
        kind = None
    if kind is None:
        desc = (f"Rendering {res}x{res} on cpu: {type(G).__module__}.{type(G).__name__} with the fused C++ "
                f"filtered_lrelu/upfirdn2d kernel ({isa}), float32")
        return PreparedGenerator(G, _KernelsSynthesis(G.synthesis), desc), desc
    if prec == "bf16":
        conv = ("bfloat16 convolutions (oneDNN; float32 accumulation, filters" +
                (", input, last two layers and ToRGB)" if kind == "stylegan3" else
                 f", blocks up to {FastSynthesisSG2.FP32_MAX_RES}x{FastSynthesisSG2.FP32_MAX_RES} and ToRGB)"))
    else:
        conv = "float32 convolutions (oneDNN)"
    what = "filtered_lrelu" if kind == "stylegan3" else "resampling/noise/bias/lrelu"
    desc = (f"Rendering {res}x{res} on cpu: fast {kind} path, fused C++ {what} kernel ({isa}, "
            f"{torch.get_num_threads()} threads), {conv}")
    if prec == "bf16" and not cpu_has_native_bf16():
        desc += " [this CPU has no native bfloat16: slow]"
    return PreparedGenerator(G, syn, desc), desc

#----------------------------------------------------------------------------
# FLOP counter.

def _filter_flops(C: int, in_hw: tuple[int, int], plan: cpu_kernels.FilteredLReLUPlan) -> int:
    """FLOPs of one filtered_lrelu as the kernel computes it: multiply-adds over non-zero polyphase taps
    (x pass on the input rows, y pass on the intermediate rows; down filter 2-D or separable), plus
    4 per intermediate sample (bias/scale, activation, clamp)."""
    H, W = in_hw
    (fuw, fuh), (fdw, fdh) = plan.fu.size, plan.fd.size
    U = plan.up
    zw = W * U + plan.pad[0] + plan.pad[1] - fuw + 1
    zh = H * U + plan.pad[2] + plan.pad[3] - fuh + 1
    oh, ow = plan.out_size(H, W)
    tu_x, tu_y = -(-fuw // U), -(-fuh // U)
    up = H * zw * tu_x + zh * zw * tu_y
    if plan.fd.f2.numel():
        down = oh * ow * fdh * fdw
    else:
        down = zh * ow * fdw + oh * ow * fdh
    return C * (2 * (up + down) + 4 * zh * zw)


def count_flops(G: torch.nn.Module) -> dict[str, Any]:
    """Floating-point operations (a multiply-add counts 2) of one frame of `G.synthesis` at batch 1:
    `{'conv': ..., 'filter': ..., 'other': ..., 'total': ..., 'layers': [(name, conv, filter), ...]}`.
    conv: the modulated convolutions (and StyleGAN3's input channel mixing); filter: resampling,
    activation, bias, noise; other: styles, modulation and demodulation."""
    G = G.orig if isinstance(G, PreparedGenerator) else G
    kind = _kind(G)
    if kind is None:
        raise ValueError(f"count_flops: unknown generator {type(G).__module__}.{type(G).__name__}")
    layers: list[tuple[str, int, int]] = []
    other = 0
    syn = G.synthesis
    if kind == "stylegan3":
        inp = syn.input
        hw = int(inp.size[0]) * int(inp.size[1])
        layers.append(("input", 2 * inp.channels ** 2 * hw, 8 * inp.channels * hw))
        for name in syn.layer_names:
            L = getattr(syn, name)
            k, I, O = int(L.conv_kernel), int(L.in_channels), int(L.out_channels)
            ch, cw = int(L.in_size[1]) + k - 1, int(L.in_size[0]) + k - 1
            conv = 2 * O * I * k * k * ch * cw
            if L.is_torgb:
                filt = 3 * O * ch * cw
            else:
                plan = cpu_kernels.prepare_filtered_lrelu(L.up_filter, L.down_filter, int(L.up_factor),
                                                          int(L.down_factor), tuple(L.padding), 1, 0.2, None, False,
                                                          (ch, cw))
                filt = _filter_flops(O, (ch, cw), plan)
            other += 2 * G.w_dim * I + 4 * O * I
            layers.append((name, conv, filt))
    else:
        for res in syn.block_resolutions:
            b = getattr(syn, f"b{res}")
            for lname in ("conv0", "conv1"):
                L = getattr(b, lname, None)
                if L is None:
                    continue
                O, I, kh, kw = L.weight.shape
                conv = 2 * O * I * kh * kw * (L.resolution // L.up) ** 2  # transposed when up > 1: input pixels
                fw = int(L.resample_filter.shape[-1])
                filt = O * res * res * (2 * 2 * fw if L.up > 1 else 0) + 5 * O * res * res
                other += 2 * G.w_dim * I + 4 * O * I * kh * kw
                layers.append((f"b{res}.{lname}", int(conv), int(filt)))
            if hasattr(b, "torgb"):
                O, I = b.torgb.weight.shape[:2]
                up = 2 * 2 * 4 * 3 * res * res if res > 4 else 0
                layers.append((f"b{res}.torgb", 2 * O * I * res * res, up + 3 * O * res * res))
                other += 2 * G.w_dim * I + 2 * O * I
    m = G.mapping
    other += sum(2 * getattr(m, f"fc{i}").in_features * getattr(m, f"fc{i}").out_features for i in range(m.num_layers))
    conv = sum(c for _, c, _ in layers)
    filt = sum(f for _, _, f in layers)
    return {"conv": conv, "filter": filt, "other": other, "total": conv + filt + other, "layers": layers}

#----------------------------------------------------------------------------

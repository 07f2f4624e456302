"""StyleGAN2 generator and discriminator (Karras et al. 2020, "Analyzing and Improving the Image
Quality of StyleGAN"; the ADA training set-up of Karras et al. 2020, "Training Generative
Adversarial Networks with Limited Data").

Constructor keywords, the module tree and every parameter/buffer name follow the published
StyleGAN2-ADA / StyleGAN3 pickles (`shared/spec/interop.md`, sections 3-5), so their weights load
here by name and `--resume` works. The source of this module travels inside every pickle that holds
one of its classes: it imports only numpy, torch and `torch_utils` (misc, persistence, ops).

Tensor conventions: images and feature maps are NCHW; latents `z` are [N, z_dim]; labels `c` are
[N, c_dim] (one-hot or empty); `ws` are [N, num_ws, w_dim]. Images are about [-1, 1].
On a CPU every block runs in float32; on CUDA the blocks at the top `num_fp16_res` resolutions
run in float16 with activations clamped to +-`conv_clamp`.
"""

import numpy as np
import torch

from torch_utils import misc, persistence
from torch_utils.ops import bias_act, conv2d_resample, fma, upfirdn2d

# Device types whose layers with use_fp16 compute in float16 (elsewhere they stay float32, as in the
# published networks). A constant of this module, not of torch_utils: a pickle of these networks
# needs only the torch_utils API of the published code. The tests add 'cpu' to run the float16 path.
FP16_DEVICE_TYPES = ('cuda',)

#----------------------------------------------------------------------------
# Latent normalisation (StyleGAN, Section 2): every row rescaled to unit mean square.

@misc.profiled_function
def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()

#----------------------------------------------------------------------------
# Modulated convolution with weight demodulation (StyleGAN2, Section 2.2, Equations 1-3).

@misc.profiled_function
def modulated_conv2d(
    x: torch.Tensor,                # Input activations [N, I, H, W].
    weight: torch.Tensor,           # Shared kernel [O, I, kh, kw].
    styles: torch.Tensor,           # Per-sample input-channel scales [N, I].
    noise: torch.Tensor | None = None,  # Added to the output, broadcastable to [N, O, H', W'].
    up: int = 1,                    # Integer upsampling factor (transposed convolution).
    down: int = 1,                  # Integer downsampling factor.
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,  # Low-pass filter for up/down (upfirdn2d.setup_filter).
    demodulate: bool = True,        # Normalise each output channel's modulated kernel to unit L2 norm.
    flip_weight: bool = True,       # Passed to conv2d_resample (False for the transposed path).
    fused_modconv: bool = True,     # One grouped convolution with per-sample kernels, or a shared
                                    # convolution between input scaling and output scaling.
) -> torch.Tensor:
    n = x.shape[0]
    out_ch, in_ch, kh, kw = weight.shape
    misc.assert_shape(x, [n, in_ch, None, None])
    misc.assert_shape(styles, [n, in_ch])

    # float16 products of large weights and styles can overflow. With demodulation any positive
    # rescaling of the weight or of the styles cancels, so bring both to a safe range first.
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (1 / np.sqrt(in_ch * kh * kw) / weight.norm(float('inf'), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float('inf'), dim=1, keepdim=True)

    # Demodulation coefficient of output channel o of sample n: 1 / ||weight[o] * styles[n]||_2.
    # sum_{i,k} (w_oik s_ni)^2 = sum_i s_ni^2 sum_k w_oik^2, so no [N, O, I, k, k] tensor is needed.
    dcoefs = None
    if demodulate:
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [N, O]

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(n, in_ch, 1, 1)
        x = conv2d_resample.conv2d_resample(x=x, w=weight.to(x.dtype), f=resample_filter, up=up, down=down,
                                            padding=padding, flip_weight=flip_weight)
        if dcoefs is not None and noise is not None:
            return fma.fma(x, dcoefs.to(x.dtype).reshape(n, out_ch, 1, 1), noise.to(x.dtype))
        if dcoefs is not None:
            return x * dcoefs.to(x.dtype).reshape(n, out_ch, 1, 1)
        if noise is not None:
            return x.add_(noise.to(x.dtype))
        return x

    # Fused: fold the batch into the channel axis and convolve with one kernel per sample.
    w = weight.unsqueeze(0) * styles.reshape(n, 1, in_ch, 1, 1)  # [N, O, I, kh, kw]
    if dcoefs is not None:
        w = w * dcoefs.reshape(n, out_ch, 1, 1, 1)
    x = x.reshape(1, n * in_ch, *x.shape[2:])
    x = conv2d_resample.conv2d_resample(x=x, w=w.reshape(n * out_ch, in_ch, kh, kw).to(x.dtype),
                                        f=resample_filter, up=up, down=down, padding=padding,
                                        groups=n, flip_weight=flip_weight)
    x = x.reshape(n, out_ch, *x.shape[2:])
    if noise is not None:
        x = x.add_(noise.to(x.dtype))
    return x

#----------------------------------------------------------------------------
# Equalised-learning-rate layers (Karras et al. 2018, Section 4.1): weights are stored at unit
# variance and scaled at run time; `lr_multiplier` slows a layer down (mapping network).

@persistence.persistent_class
class FullyConnectedLayer(torch.nn.Module):
    def __init__(self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = 'linear',     # Name in bias_act.activation_funcs.
        lr_multiplier: float = 1,
        bias_init: float = 0,
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], np.float32(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, in_features] -> [N, out_features]."""
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == 'linear' and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act.bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f'in_features={self.in_features:d}, out_features={self.out_features:d}, activation={self.activation:s}'


@persistence.persistent_class
class Conv2dLayer(torch.nn.Module):
    def __init__(self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = 'linear',
        up: int = 1,
        down: int = 1,
        resample_filter: list = [1, 3, 3, 1],   # 1D taps of the separable low-pass filter for up/down.
        conv_clamp: float | None = None,        # Clamp the output to +-conv_clamp (None: no clamp).
        channels_last: bool = False,
        trainable: bool = True,                 # False: weights become buffers (frozen layers of D).
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size ** 2))
        self.act_gain = bias_act.activation_funcs[activation].def_gain

        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        bias = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = torch.nn.Parameter(weight)
            self.bias = torch.nn.Parameter(bias) if bias is not None else None
        else:
            self.register_buffer('weight', weight)
            if bias is not None:
                self.register_buffer('bias', bias)
            else:
                self.bias = None

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:
        """x: [N, in_channels, H, W] -> [N, out_channels, H * up / down, W * up / down]."""
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = conv2d_resample.conv2d_resample(x=x, w=w.to(x.dtype), f=self.resample_filter, up=self.up,
                                            down=self.down, padding=self.padding, flip_weight=(self.up == 1))
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act.bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=act_clamp)

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels:d}, out_channels={self.out_channels:d}, '
                f'activation={self.activation:s}, up={self.up}, down={self.down}')

#----------------------------------------------------------------------------
# Mapping network z (+ class embedding) -> w, with the running average of w for truncation.

@persistence.persistent_class
class MappingNetwork(torch.nn.Module):
    def __init__(self,
        z_dim: int,                     # 0: no latent input (conditioning-only mapping of D).
        c_dim: int,                     # 0: no labels.
        w_dim: int,
        num_ws: int | None,             # Number of ws to output; None: return [N, w_dim] without broadcast.
        num_layers: int = 8,
        embed_features: int | None = None,  # Width of the label embedding; None: w_dim.
        layer_features: int | None = None,  # Width of the hidden layers; None: w_dim.
        activation: str = 'lrelu',
        lr_multiplier: float = 0.01,
        w_avg_beta: float | None = 0.998,   # Decay of the running average of w; None: no average.
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta

        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        widths = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]

        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(widths[idx], widths[idx + 1], activation=activation, lr_multiplier=lr_multiplier)
            setattr(self, f'fc{idx}', layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer('w_avg', torch.zeros([w_dim]))

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None, truncation_psi: float = 1,
                truncation_cutoff: int | None = None, update_emas: bool = False) -> torch.Tensor:
        """z: [N, z_dim], c: [N, c_dim] -> ws [N, num_ws, w_dim] (or [N, w_dim] when num_ws is None).

        truncation_psi < 1 pulls the first `truncation_cutoff` ws (all when None) toward `w_avg`;
        update_emas=True moves `w_avg` toward the batch mean (training only)."""
        parts = []
        if self.z_dim > 0:
            misc.assert_shape(z, [None, self.z_dim])
            parts.append(normalize_2nd_moment(z.to(torch.float32)))
        if self.c_dim > 0:
            misc.assert_shape(c, [None, self.c_dim])
            parts.append(normalize_2nd_moment(self.embed(c.to(torch.float32))))
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        for idx in range(self.num_layers):
            x = getattr(self, f'fc{idx}')(x)

        if update_emas and self.w_avg_beta is not None:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is None:
            return x
        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            assert self.w_avg_beta is not None, 'truncation needs w_avg'
            if truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x

    def extra_repr(self) -> str:
        return f'z_dim={self.z_dim:d}, c_dim={self.c_dim:d}, w_dim={self.w_dim:d}, num_ws={self.num_ws}'

#----------------------------------------------------------------------------
# Synthesis network: a learned 4x4 constant, then one block per resolution, each with two
# modulated 3x3 convolutions (the first upsamples), per-pixel noise and an RGB output.

@persistence.persistent_class
class SynthesisLayer(torch.nn.Module):
    def __init__(self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,                # Output resolution.
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
        activation: str = 'lrelu',
        resample_filter: list = [1, 3, 3, 1],
        conv_clamp: float | None = None,
        channels_last: bool = False,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.padding = kernel_size // 2
        self.act_gain = bias_act.activation_funcs[activation].def_gain

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format))
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(resample_filter))
        if use_noise:
            self.register_buffer('noise_const', torch.randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = 'random', fused_modconv: bool = True,
                gain: float = 1) -> torch.Tensor:
        """x: [N, in_channels, resolution / up, ...], w: [N, w_dim] -> [N, out_channels, resolution, resolution].

        noise_mode: 'random' (fresh noise), 'const' (the stored `noise_const`), 'none'."""
        assert noise_mode in ('random', 'const', 'none'), f'unknown noise_mode {noise_mode!r}'
        in_res = self.resolution // self.up
        misc.assert_shape(x, [None, self.in_channels, in_res, in_res])
        styles = self.affine(w)

        noise = None
        if self.use_noise and noise_mode == 'random':
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device) * self.noise_strength
        elif self.use_noise and noise_mode == 'const':
            noise = self.noise_const * self.noise_strength

        x = modulated_conv2d(x=x, weight=self.weight, styles=styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=(self.up == 1),
                             fused_modconv=fused_modconv)
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act.bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=self.act_gain * gain,
                                 clamp=act_clamp)

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels:d}, out_channels={self.out_channels:d}, w_dim={self.w_dim:d}, '
                f'resolution={self.resolution:d}, up={self.up}, activation={self.activation:s}')


@persistence.persistent_class
class ToRGBLayer(torch.nn.Module):
    """Modulated 1x1 convolution without demodulation: features -> image channels."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: float | None = None, channels_last: bool = False):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size ** 2))

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x=x, weight=self.weight, styles=styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act.bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)

    def extra_repr(self) -> str:
        return f'in_channels={self.in_channels:d}, out_channels={self.out_channels:d}, w_dim={self.w_dim:d}'


@persistence.persistent_class
class SynthesisBlock(torch.nn.Module):
    def __init__(self,
        in_channels: int,               # 0: first block, starts from the learned constant.
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool,
        architecture: str = 'skip',     # 'orig', 'skip' or 'resnet' (StyleGAN2, Figure 7).
        resample_filter: list = [1, 3, 3, 1],
        conv_clamp: float | None = 256,
        use_fp16: bool = False,         # float16 on CUDA (never on the CPU).
        fp16_channels_last: bool = False,
        fused_modconv_default: bool | str = True,  # True, False or 'inference_only' (fused when not training).
        **layer_kwargs,                 # Passed on to SynthesisLayer.
    ):
        assert architecture in ('orig', 'skip', 'resnet')
        super().__init__()
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.fused_modconv_default = fused_modconv_default
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0

        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim=w_dim, resolution=resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp,
                                        channels_last=self.channels_last, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim=w_dim, resolution=resolution,
                                    conv_clamp=conv_clamp, channels_last=self.channels_last, **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == 'skip':
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp,
                                    channels_last=self.channels_last)
            self.num_torgb += 1
        if in_channels != 0 and architecture == 'resnet':
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter, channels_last=self.channels_last)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, force_fp32: bool = False,
                fused_modconv: bool | None = None, update_emas: bool = False, **layer_kwargs):
        """x: [N, in_channels, res/2, res/2] or None, img: [N, img_channels, res/2, res/2] or None,
        ws: [N, num_conv + num_torgb, w_dim] -> (x [N, out_channels, res, res], img float32)."""
        del update_emas  # no running statistics here
        misc.assert_shape(ws, [None, self.num_conv + self.num_torgb, self.w_dim])
        w_iter = iter(ws.unbind(dim=1))
        if ws.device.type not in FP16_DEVICE_TYPES:
            force_fp32 = True
        dtype = torch.float16 if self.use_fp16 and not force_fp32 else torch.float32
        memory_format = torch.channels_last if self.channels_last and not force_fp32 else torch.contiguous_format
        if fused_modconv is None:
            fused_modconv = self.fused_modconv_default
        if fused_modconv == 'inference_only':
            fused_modconv = not self.training

        if self.in_channels == 0:
            x = self.const.to(dtype=dtype, memory_format=memory_format)
            x = x.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        else:
            misc.assert_shape(x, [None, self.in_channels, self.resolution // 2, self.resolution // 2])
            x = x.to(dtype=dtype, memory_format=memory_format)

        if self.in_channels == 0:
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
        elif self.architecture == 'resnet':
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, gain=np.sqrt(0.5), **layer_kwargs)
            x = y.add_(x)
        else:
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)

        if img is not None:
            misc.assert_shape(img, [None, self.img_channels, self.resolution // 2, self.resolution // 2])
            img = upfirdn2d.upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == 'skip':
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            img = img.add_(y) if img is not None else y

        assert x.dtype == dtype
        assert img is None or img.dtype == torch.float32
        return x, img

    def extra_repr(self) -> str:
        return f'resolution={self.resolution:d}, architecture={self.architecture:s}, use_fp16={self.use_fp16}'


@persistence.persistent_class
class SynthesisNetwork(torch.nn.Module):
    def __init__(self,
        w_dim: int,
        img_resolution: int,            # Output resolution, a power of two >= 4.
        img_channels: int,
        channel_base: int = 32768,      # Channels at resolution r: min(channel_base // r, channel_max).
        channel_max: int = 512,
        num_fp16_res: int = 4,          # float16 (CUDA) for this many of the highest resolutions.
        **block_kwargs,                 # Passed on to SynthesisBlock.
    ):
        assert img_resolution >= 4 and img_resolution & (img_resolution - 1) == 0
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.num_fp16_res = num_fp16_res
        self.block_resolutions = [2 ** i for i in range(2, self.img_resolution_log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)

        self.num_ws = 0
        for res in self.block_resolutions:
            is_last = (res == img_resolution)
            block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim=w_dim, resolution=res,
                                   img_channels=img_channels, is_last=is_last, use_fp16=(res >= fp16_resolution),
                                   **block_kwargs)
            self.num_ws += block.num_conv + (block.num_torgb if is_last else 0)
            setattr(self, f'b{res}', block)

    def forward(self, ws: torch.Tensor, **block_kwargs) -> torch.Tensor:
        """ws: [N, num_ws, w_dim] -> image [N, img_channels, img_resolution, img_resolution] (float32).

        Keywords: noise_mode ('random' | 'const' | 'none'), force_fp32, fused_modconv, update_emas."""
        misc.assert_shape(ws, [None, self.num_ws, self.w_dim])
        ws = ws.to(torch.float32)
        # Consecutive blocks share one w: the ToRGB of block k uses the w of the first conv of block k+1.
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f'b{res}')
            x, img = block(x, img, ws.narrow(1, w_idx, block.num_conv + block.num_torgb), **block_kwargs)
            w_idx += block.num_conv
        return img

    def extra_repr(self) -> str:
        return (f'w_dim={self.w_dim:d}, num_ws={self.num_ws:d}, img_resolution={self.img_resolution:d}, '
                f'img_channels={self.img_channels:d}, num_fp16_res={self.num_fp16_res:d}')

#----------------------------------------------------------------------------

@persistence.persistent_class
class Generator(torch.nn.Module):
    """G(z, c) = synthesis(mapping(z, c)). Attributes z_dim, c_dim, w_dim, img_resolution,
    img_channels, num_ws; submodules `mapping` and `synthesis`."""

    def __init__(self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        mapping_kwargs: dict = {},      # Passed on to MappingNetwork.
        **synthesis_kwargs,             # Passed on to SynthesisNetwork (and its blocks and layers).
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        # Synthesis first: it decides num_ws, and the published module tree lists it first.
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                          **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None, truncation_psi: float = 1,
                truncation_cutoff: int | None = None, update_emas: bool = False, **synthesis_kwargs) -> torch.Tensor:
        """z: [N, z_dim], c: [N, c_dim] (or None / empty when c_dim == 0) -> [N, img_channels, H, W] float32."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)

#----------------------------------------------------------------------------
# Discriminator (StyleGAN2, Figure 7c: residual blocks), minibatch standard deviation
# (Karras et al. 2018, Section 3) and projection conditioning (Miyato & Koyama 2018).

@persistence.persistent_class
class DiscriminatorBlock(torch.nn.Module):
    def __init__(self,
        in_channels: int,               # 0: first block, reads the image.
        tmp_channels: int,
        out_channels: int,
        resolution: int,                # Input resolution; output is resolution // 2.
        img_channels: int,
        first_layer_idx: int,           # Index of this block's first layer in D (for freeze_layers).
        architecture: str = 'resnet',   # 'orig', 'skip' or 'resnet'.
        activation: str = 'lrelu',
        resample_filter: list = [1, 3, 3, 1],
        conv_clamp: float | None = None,
        use_fp16: bool = False,
        fp16_channels_last: bool = False,
        freeze_layers: int = 0,         # Layers of D with index < freeze_layers are not trainable.
    ):
        assert in_channels in (0, tmp_channels)
        assert architecture in ('orig', 'skip', 'resnet')
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.first_layer_idx = first_layer_idx
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(resample_filter))

        self.num_layers = 0

        def next_trainable() -> bool:
            trainable = (self.first_layer_idx + self.num_layers >= freeze_layers)
            self.num_layers += 1
            return trainable

        common = dict(activation=activation, conv_clamp=conv_clamp, channels_last=self.channels_last)
        if in_channels == 0 or architecture == 'skip':
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, trainable=next_trainable(), **common)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, trainable=next_trainable(), **common)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, down=2, resample_filter=resample_filter,
                                 trainable=next_trainable(), **common)
        if architecture == 'resnet':
            self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                                    resample_filter=resample_filter, trainable=next_trainable(),
                                    channels_last=self.channels_last)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, force_fp32: bool = False):
        """x: [N, in_channels, res, res] or None, img: [N, img_channels, res, res] or None
        -> (x [N, out_channels, res/2, res/2], img downsampled for 'skip', else None)."""
        ref = x if x is not None else img
        if ref.device.type not in FP16_DEVICE_TYPES:
            force_fp32 = True
        dtype = torch.float16 if self.use_fp16 and not force_fp32 else torch.float32
        memory_format = torch.channels_last if self.channels_last and not force_fp32 else torch.contiguous_format

        if x is not None:
            misc.assert_shape(x, [None, self.in_channels, self.resolution, self.resolution])
            x = x.to(dtype=dtype, memory_format=memory_format)
        if self.in_channels == 0 or self.architecture == 'skip':
            misc.assert_shape(img, [None, self.img_channels, self.resolution, self.resolution])
            img = img.to(dtype=dtype, memory_format=memory_format)
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = upfirdn2d.downsample2d(img, self.resample_filter) if self.architecture == 'skip' else None

        if self.architecture == 'resnet':
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=np.sqrt(0.5))
            x = y.add_(x)
        else:
            x = self.conv0(x)
            x = self.conv1(x)
        assert x.dtype == dtype
        return x, img

    def extra_repr(self) -> str:
        return f'resolution={self.resolution:d}, architecture={self.architecture:s}, use_fp16={self.use_fp16}'


@persistence.persistent_class
class MinibatchStdLayer(torch.nn.Module):
    """Appends `num_channels` feature maps holding the standard deviation of the features across
    groups of `group_size` samples (sample n is grouped with n + k * N / G)."""

    def __init__(self, group_size: int | None, num_channels: int = 1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        with misc.suppress_tracer_warnings():  # the group size is a constant while tracing
            g = min(int(self.group_size), int(n)) if self.group_size is not None else int(n)
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)      # [G, M, F, C/F, H, W], M = N / G
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()  # std over each group
        y = y.mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1)  # [M, F, 1, 1]
        y = y.repeat(g, 1, h, w)                    # [N, F, H, W]
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f'group_size={self.group_size}, num_channels={self.num_channels:d}'


@persistence.persistent_class
class DiscriminatorEpilogue(torch.nn.Module):
    def __init__(self,
        in_channels: int,
        cmap_dim: int,                  # Width of the label projection; 0: unconditional.
        resolution: int,
        img_channels: int,
        architecture: str = 'resnet',
        mbstd_group_size: int | None = 4,   # None: the whole minibatch is one group.
        mbstd_num_channels: int = 1,        # 0: no minibatch-stddev layer.
        activation: str = 'lrelu',
        conv_clamp: float | None = None,
    ):
        assert architecture in ('orig', 'skip', 'resnet')
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture

        if architecture == 'skip':
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation=activation,
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution ** 2, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, img: torch.Tensor | None, cmap: torch.Tensor | None,
                force_fp32: bool = False) -> torch.Tensor:
        """x: [N, in_channels, 4, 4] -> logits [N, 1]. Always float32."""
        del force_fp32
        misc.assert_shape(x, [None, self.in_channels, self.resolution, self.resolution])
        x = x.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        if self.architecture == 'skip':
            misc.assert_shape(img, [None, self.img_channels, self.resolution, self.resolution])
            x = x + self.fromrgb(img.to(dtype=torch.float32, memory_format=torch.contiguous_format))
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)
        if cmap is not None:
            misc.assert_shape(cmap, [None, self.cmap_dim])
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))
        return x

    def extra_repr(self) -> str:
        return f'resolution={self.resolution:d}, architecture={self.architecture:s}'


@persistence.persistent_class
class Discriminator(torch.nn.Module):
    """D(img, c) -> logits [N, 1]. img: [N, img_channels, img_resolution, img_resolution] in about [-1, 1]."""

    def __init__(self,
        c_dim: int,
        img_resolution: int,
        img_channels: int,
        architecture: str = 'resnet',
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 4,
        conv_clamp: float | None = 256,
        cmap_dim: int | None = None,    # None: channels at 4x4 (0 when unconditional).
        block_kwargs: dict = {},        # Passed on to DiscriminatorBlock.
        mapping_kwargs: dict = {},      # Passed on to the label MappingNetwork.
        epilogue_kwargs: dict = {},     # Passed on to DiscriminatorEpilogue.
    ):
        super().__init__()
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.block_resolutions = [2 ** i for i in range(self.img_resolution_log2, 2, -1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
        if cmap_dim is None:
            cmap_dim = channels[4]
        if c_dim == 0:
            cmap_dim = 0

        common = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        layer_idx = 0
        for res in self.block_resolutions:
            block = DiscriminatorBlock(channels[res] if res < img_resolution else 0, channels[res], channels[res // 2],
                                       resolution=res, first_layer_idx=layer_idx, use_fp16=(res >= fp16_resolution),
                                       **block_kwargs, **common)
            setattr(self, f'b{res}', block)
            layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None,
                                          **mapping_kwargs)
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim=cmap_dim, resolution=4, **epilogue_kwargs, **common)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None, update_emas: bool = False,
                **block_kwargs) -> torch.Tensor:
        del update_emas  # no running statistics in D
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f'b{res}')(x, img, **block_kwargs)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, img, cmap)

    def extra_repr(self) -> str:
        return f'c_dim={self.c_dim:d}, img_resolution={self.img_resolution:d}, img_channels={self.img_channels:d}'

#----------------------------------------------------------------------------

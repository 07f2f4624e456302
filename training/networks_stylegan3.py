"""StyleGAN3 generator (Karras et al. 2021, "Alias-Free Generative Adversarial Networks"):
configurations T (translation equivariant, 3x3 convolutions) and R (rotation equivariant,
1x1 convolutions and radially symmetric down-sampling filters).

The signal is treated as a continuous image represented by samples. Each layer upsamples the
features to a higher temporary sampling rate, applies the leaky ReLU there, low-pass filters and
downsamples again (`filtered_lrelu`), so the nonlinearity does not alias. The cutoff, stopband and
sampling rate of every layer follow the schedule of the paper (Section 3.2, Appendix F); filters
are Kaiser-windowed FIR designs (Appendix C).

Constructor keywords, the module tree and every parameter/buffer name follow the published
StyleGAN3 pickles (`shared/spec/interop.md`, sections 3-5). The source of this module travels inside
every pickle that holds one of its classes: it imports only numpy, scipy.signal, torch and
`torch_utils` (misc, persistence, ops). The discriminator is the StyleGAN2 one
(`training.networks_stylegan2.Discriminator`).

Tensor conventions: NCHW feature maps; z [N, z_dim]; c [N, c_dim]; ws [N, num_ws, w_dim]
(num_ws = num_layers + 2: one for the input, one per layer); images about [-1, 1].
"""

import numpy as np
import scipy.signal
import torch

from torch_utils import misc, persistence
from torch_utils.ops import bias_act, conv2d_gradfix, filtered_lrelu

# Device types whose layers with use_fp16 compute in float16 (elsewhere they stay float32, as in the
# published networks). A constant of this module, not of torch_utils: a pickle of these networks
# needs only the torch_utils API of the published code. The tests add 'cpu' to run the float16 path.
FP16_DEVICE_TYPES = ('cuda',)

#----------------------------------------------------------------------------
# Modulated convolution (StyleGAN2 Equations 1-3) with the StyleGAN3 changes: both the weight and
# the styles are normalised before modulation, and the input is divided by its running RMS.

@misc.profiled_function
def modulated_conv2d(
    x: torch.Tensor,                    # Input [N, I, H, W].
    w: torch.Tensor,                    # Shared kernel [O, I, k, k].
    s: torch.Tensor,                    # Styles [N, I].
    demodulate: bool = True,
    padding: int = 0,
    input_gain: torch.Tensor | None = None,  # Scalar or [I] (or [N, I]) factor applied to the input.
) -> torch.Tensor:
    n = int(x.shape[0])
    out_ch, in_ch, kh, kw = w.shape
    misc.assert_shape(w, [out_ch, in_ch, kh, kw])
    misc.assert_shape(x, [n, in_ch, None, None])
    misc.assert_shape(s, [n, in_ch])

    if demodulate:
        # Unit-RMS kernels per output channel and unit-RMS styles over the whole batch. This
        # cancels in the demodulation up to its epsilon and keeps float16 products in range.
        w = w * w.square().mean([1, 2, 3], keepdim=True).rsqrt()
        s = s * s.square().mean().rsqrt()

    wm = w.unsqueeze(0) * s.reshape(n, 1, in_ch, 1, 1)  # [N, O, I, k, k]
    if demodulate:
        dcoefs = (wm.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
        wm = wm * dcoefs.reshape(n, out_ch, 1, 1, 1)
    if input_gain is not None:
        wm = wm * input_gain.expand(n, in_ch).reshape(n, 1, in_ch, 1, 1)

    # One grouped convolution with a kernel per sample.
    x = x.reshape(1, n * in_ch, *x.shape[2:])
    x = conv2d_gradfix.conv2d(input=x, weight=wm.reshape(n * out_ch, in_ch, kh, kw).to(x.dtype),
                              padding=padding, groups=n)
    return x.reshape(n, out_ch, *x.shape[2:])

#----------------------------------------------------------------------------
# Equalised-learning-rate fully connected layer.

@persistence.persistent_class
class FullyConnectedLayer(torch.nn.Module):
    def __init__(self,
        in_features: int,
        out_features: int,
        activation: str = 'linear',     # Name in bias_act.activation_funcs.
        bias: bool = True,
        lr_multiplier: float = 1,
        weight_init: float = 1,         # Standard deviation of the initial (effective) weight.
        bias_init: float | list = 0,    # Initial (effective) bias, scalar or one value per output.
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) * (weight_init / lr_multiplier))
        bias_init = np.broadcast_to(np.asarray(bias_init, dtype=np.float32), [out_features])
        self.bias = torch.nn.Parameter(torch.from_numpy(bias_init / lr_multiplier)) if bias else None
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

#----------------------------------------------------------------------------
# Mapping network z (+ class embedding) -> w.

@persistence.persistent_class
class MappingNetwork(torch.nn.Module):
    def __init__(self,
        z_dim: int,
        c_dim: int,                     # 0: no labels.
        w_dim: int,
        num_ws: int,
        num_layers: int = 2,
        lr_multiplier: float = 0.01,
        w_avg_beta: float = 0.998,      # Decay of the running average of w (for truncation).
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta

        # The label embedding has w_dim features and is concatenated with the normalised z.
        widths = [z_dim + (w_dim if c_dim > 0 else 0)] + [w_dim] * num_layers
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, w_dim)
        for idx in range(num_layers):
            setattr(self, f'fc{idx}', FullyConnectedLayer(widths[idx], widths[idx + 1], activation='lrelu',
                                                          lr_multiplier=lr_multiplier))
        self.register_buffer('w_avg', torch.zeros([w_dim]))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None, truncation_psi: float = 1,
                truncation_cutoff: int | None = None, update_emas: bool = False) -> torch.Tensor:
        """z: [N, z_dim], c: [N, c_dim] -> ws [N, num_ws, w_dim]; truncation as in StyleGAN2."""
        misc.assert_shape(z, [None, self.z_dim])
        x = _normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            misc.assert_shape(c, [None, self.c_dim])
            y = _normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1)
        for idx in range(self.num_layers):
            x = getattr(self, f'fc{idx}')(x)

        if update_emas:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x

    def extra_repr(self) -> str:
        return f'z_dim={self.z_dim:d}, c_dim={self.c_dim:d}, w_dim={self.w_dim:d}, num_ws={self.num_ws:d}'


def _normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()

#----------------------------------------------------------------------------
# Fourier-feature input (Section 3.1): a bank of band-limited sinusoids with random frequencies
# inside a disc of radius `bandwidth`, translated and rotated per sample by a transform predicted
# from w, and by the user-set 3x3 `transform` buffer (maps output coordinates to input coordinates).

@persistence.persistent_class
class SynthesisInput(torch.nn.Module):
    def __init__(self,
        w_dim: int,
        channels: int,                  # Number of sinusoids.
        size: int | list,               # Output size in samples: int or [width, height].
        sampling_rate: float,           # Samples per unit length.
        bandwidth: float,               # Largest frequency magnitude of the sinusoids.
    ):
        super().__init__()
        self.w_dim = w_dim
        self.channels = channels
        self.size = np.broadcast_to(np.asarray(size), [2])
        self.sampling_rate = sampling_rate
        self.bandwidth = bandwidth

        # Random directions; radii drawn so that the frequencies fill the disc, then scaled.
        freqs = torch.randn([channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs /= radii * radii.square().exp().pow(0.25)
        freqs *= bandwidth
        phases = torch.rand([channels]) - 0.5

        self.weight = torch.nn.Parameter(torch.randn([channels, channels]))
        # w -> (cos, sin, tx, ty); starts at the identity.
        self.affine = FullyConnectedLayer(w_dim, 4, weight_init=0, bias_init=[1, 0, 0, 0])
        self.register_buffer('transform', torch.eye(3, 3))
        self.register_buffer('freqs', freqs)
        self.register_buffer('phases', phases)

    def sample_coords(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel centres in input units: x [W], y [H], centred on the origin."""
        width, height = int(self.size[0]), int(self.size[1])
        xs = (torch.arange(width, device=device, dtype=torch.float32) + (0.5 - width / 2)) / self.sampling_rate
        ys = (torch.arange(height, device=device, dtype=torch.float32) + (0.5 - height / 2)) / self.sampling_rate
        return xs, ys

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        """w: [N, w_dim] -> features [N, channels, height, width] (float32)."""
        n = w.shape[0]
        misc.assert_shape(w, [None, self.w_dim])

        # Per-sample rotation angle (as a unit vector) and translation.
        t = self.affine(w)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        cos, sin, tx, ty = t.unbind(dim=1)
        one, zero = torch.ones_like(cos), torch.zeros_like(cos)
        # The image moves by (rotation, translation), so coordinates move by their inverses.
        inv_rot = torch.stack([cos, -sin, zero, sin, cos, zero, zero, zero, one], dim=1).reshape(n, 3, 3)
        inv_shift = torch.stack([one, zero, -tx, zero, one, -ty, zero, zero, one], dim=1).reshape(n, 3, 3)
        m = inv_rot @ inv_shift @ self.transform.unsqueeze(0)  # [N, 3, 3]

        # sin(2 pi (f . (A p + b) + phase)) = sin(2 pi ((f A) . p + (f . b + phase))).
        base = self.freqs.unsqueeze(0)                             # [1, C, 2]
        phases = self.phases.unsqueeze(0) + (base @ m[:, :2, 2:]).squeeze(2)  # [N, C]
        freqs = base @ m[:, :2, :2]                                # [N, C, 2]

        # Fade out sinusoids whose frequency the transform pushed past the bandwidth.
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)

        xs, ys = self.sample_coords(w.device)
        arg = (xs.reshape(1, 1, -1, 1) * freqs[:, :, 0].reshape(n, 1, 1, -1)
               + ys.reshape(1, -1, 1, 1) * freqs[:, :, 1].reshape(n, 1, 1, -1)
               + phases.reshape(n, 1, 1, -1))                      # [N, H, W, C]
        x = torch.sin(arg * (np.pi * 2)) * amplitudes.reshape(n, 1, 1, -1)

        # Learned channel mixing (a 1x1 convolution), then NCHW.
        x = x @ (self.weight / np.sqrt(self.channels)).t()
        return x.permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return (f'w_dim={self.w_dim:d}, channels={self.channels:d}, size={list(self.size)}, '
                f'sampling_rate={self.sampling_rate:g}, bandwidth={self.bandwidth:g}')

#----------------------------------------------------------------------------
# Filter design (Appendix C): Kaiser-windowed low-pass FIR filters.

def design_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float,
                          radial: bool = False) -> torch.Tensor | None:
    """A low-pass filter with `numtaps` taps, `cutoff` and transition band `width` (both in the
    units of the sampling rate `fs`).

    Returns None for one tap (identity), a separable 1-D filter [numtaps], or, with radial=True, a
    rotationally symmetric 2-D filter [numtaps, numtaps]: the jinc impulse response of an ideal
    circular low-pass, windowed by the outer product of two Kaiser windows, normalised to unit DC gain."""
    assert numtaps >= 1
    if numtaps == 1:
        return None
    if not radial:
        f = scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs)
        return torch.as_tensor(f, dtype=torch.float32)

    coords = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(coords, coords))
    # jinc: J1(2 pi c r) / (pi r); its limit at r = 0 is c. scipy.special is loaded with scipy.signal.
    with np.errstate(divide='ignore', invalid='ignore'):
        f = scipy.special.j1(2 * np.pi * cutoff * r) / (np.pi * r)
    f = np.where(r == 0, cutoff, f)
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2)))
    window = np.kaiser(numtaps, beta)
    f = f * np.outer(window, window)
    f = f / np.sum(f)
    return torch.as_tensor(f, dtype=torch.float32)

#----------------------------------------------------------------------------
# Alias-free synthesis layer: modulated convolution, then upsample / bias / leaky ReLU / low-pass /
# downsample in one `filtered_lrelu` (Section 3.2). The last layer (ToRGB) is a 1x1 modulated
# convolution without demodulation, nonlinearity or resampling.

@persistence.persistent_class
class SynthesisLayer(torch.nn.Module):
    def __init__(self,
        w_dim: int,
        is_torgb: bool,
        is_critically_sampled: bool,    # Cutoff at the Nyquist frequency (the last layers).
        use_fp16: bool,                 # float16 on CUDA (never on the CPU).
        in_channels: int,
        out_channels: int,
        in_size: int | list,            # Input size in samples: int or [width, height].
        out_size: int | list,
        in_sampling_rate: int,
        out_sampling_rate: int,
        in_cutoff: float,
        out_cutoff: float,
        in_half_width: float,           # Half the transition band of the up-sampling filter.
        out_half_width: float,          # Half the transition band of the down-sampling filter.
        conv_kernel: int = 3,           # 1 for configuration R.
        filter_size: int = 6,           # Taps per unit of resampling factor.
        lrelu_upsampling: int = 2,      # Temporary oversampling for the nonlinearity.
        use_radial_filters: bool = False,  # Radially symmetric down-sampling filters (configuration R).
        conv_clamp: float | None = 256,
        magnitude_ema_beta: float = 0.999,  # Decay of the running mean square of the input.
    ):
        super().__init__()
        self.w_dim = w_dim
        self.is_torgb = is_torgb
        self.is_critically_sampled = is_critically_sampled
        self.use_fp16 = use_fp16
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.in_size = np.broadcast_to(np.asarray(in_size), [2])
        self.out_size = np.broadcast_to(np.asarray(out_size), [2])
        self.in_sampling_rate = in_sampling_rate
        self.out_sampling_rate = out_sampling_rate
        self.tmp_sampling_rate = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)
        self.in_cutoff = in_cutoff
        self.out_cutoff = out_cutoff
        self.in_half_width = in_half_width
        self.out_half_width = out_half_width
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp = conv_clamp
        self.magnitude_ema_beta = magnitude_ema_beta

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, self.conv_kernel, self.conv_kernel]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer('magnitude_ema', torch.ones([]))

        # Up-sampling filter: in rate -> temporary rate, passing the input band.
        self.up_factor = int(np.rint(self.tmp_sampling_rate / in_sampling_rate))
        assert in_sampling_rate * self.up_factor == self.tmp_sampling_rate
        self.up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        self.register_buffer('up_filter', design_lowpass_filter(
            numtaps=self.up_taps, cutoff=in_cutoff, width=in_half_width * 2, fs=self.tmp_sampling_rate))

        # Down-sampling filter: temporary rate -> out rate, removing what the nonlinearity added.
        self.down_factor = int(np.rint(self.tmp_sampling_rate / out_sampling_rate))
        assert out_sampling_rate * self.down_factor == self.tmp_sampling_rate
        self.down_taps = filter_size * self.down_factor if self.down_factor > 1 and not is_torgb else 1
        self.down_radial = use_radial_filters and not is_critically_sampled
        self.register_buffer('down_filter', design_lowpass_filter(
            numtaps=self.down_taps, cutoff=out_cutoff, width=out_half_width * 2, fs=self.tmp_sampling_rate,
            radial=self.down_radial))

        # Padding so that the full convolution, up-sampling and down-sampling give exactly out_size:
        # an output of n samples at rate `down` needs (n - 1) * down + 1 samples before decimation.
        pad_total = (self.out_size - 1) * self.down_factor + 1
        pad_total -= (self.in_size + self.conv_kernel - 1) * self.up_factor
        pad_total += self.up_taps + self.down_taps - 2
        pad_lo = (pad_total + self.up_factor) // 2
        pad_hi = pad_total - pad_lo
        self.padding = [int(pad_lo[0]), int(pad_hi[0]), int(pad_lo[1]), int(pad_hi[1])]

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = 'random', force_fp32: bool = False,
                update_emas: bool = False) -> torch.Tensor:
        """x: [N, in_channels, in_h, in_w], w: [N, w_dim] -> [N, out_channels, out_h, out_w].

        noise_mode is accepted for interface compatibility (StyleGAN3 has no noise inputs).
        update_emas=True moves `magnitude_ema` toward the mean square of this input."""
        assert noise_mode in ('random', 'const', 'none'), f'unknown noise_mode {noise_mode!r}'
        misc.assert_shape(x, [None, self.in_channels, int(self.in_size[1]), int(self.in_size[0])])
        misc.assert_shape(w, [x.shape[0], self.w_dim])

        if update_emas:
            magnitude_cur = x.detach().to(torch.float32).square().mean()
            self.magnitude_ema.copy_(magnitude_cur.lerp(self.magnitude_ema, self.magnitude_ema_beta))
        input_gain = self.magnitude_ema.rsqrt()

        styles = self.affine(w)
        if self.is_torgb:
            styles = styles * (1 / np.sqrt(self.in_channels * (self.conv_kernel ** 2)))

        use_fp16 = self.use_fp16 and not force_fp32 and x.device.type in FP16_DEVICE_TYPES
        dtype = torch.float16 if use_fp16 else torch.float32
        x = modulated_conv2d(x=x.to(dtype), w=self.weight, s=styles, padding=self.conv_kernel - 1,
                             demodulate=(not self.is_torgb), input_gain=input_gain)

        gain = 1 if self.is_torgb else np.sqrt(2)
        slope = 1 if self.is_torgb else 0.2
        x = filtered_lrelu.filtered_lrelu(x=x, fu=self.up_filter, fd=self.down_filter, b=self.bias.to(x.dtype),
                                          up=self.up_factor, down=self.down_factor, padding=self.padding,
                                          gain=gain, slope=slope, clamp=self.conv_clamp)

        misc.assert_shape(x, [None, self.out_channels, int(self.out_size[1]), int(self.out_size[0])])
        assert x.dtype == dtype
        return x

    def extra_repr(self) -> str:
        return (f'w_dim={self.w_dim:d}, is_torgb={self.is_torgb}, is_critically_sampled={self.is_critically_sampled}, '
                f'use_fp16={self.use_fp16}, in_sampling_rate={self.in_sampling_rate:g}, '
                f'out_sampling_rate={self.out_sampling_rate:g}, in_cutoff={self.in_cutoff:g}, '
                f'out_cutoff={self.out_cutoff:g}, in_channels={self.in_channels:d}, '
                f'out_channels={self.out_channels:d}, in_size={list(self.in_size)}, out_size={list(self.out_size)}')

#----------------------------------------------------------------------------
# Synthesis network: the schedule of cutoffs, stopbands and sampling rates (Section 3.2, Figure 4).

def layer_schedule(img_resolution: int, num_layers: int = 14, num_critical: int = 2, first_cutoff: float = 2,
                   first_stopband: float = 2 ** 2.1, last_stopband_rel: float = 2 ** 0.3,
                   margin_size: int = 10) -> dict:
    """Per-layer filter parameters for layers 0..num_layers (the last one is ToRGB) as numpy arrays:
    cutoffs, stopbands, sampling_rates, half_widths, sizes (samples incl. margins).

    Cutoff and stopband grow geometrically from the first values to the image's Nyquist frequency
    (reached `num_critical` layers before the end, which are critically sampled); the sampling rate
    is the smallest power of two at or above twice the stopband, at most the image resolution."""
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
    sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
    sizes = sampling_rates + margin_size * 2
    sizes[-2:] = img_resolution
    return dict(cutoffs=cutoffs, stopbands=stopbands, sampling_rates=sampling_rates, half_widths=half_widths,
                sizes=sizes)


@persistence.persistent_class
class SynthesisNetwork(torch.nn.Module):
    def __init__(self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,      # Channels of a layer: min(channel_base / 2 / cutoff, channel_max).
        channel_max: int = 512,
        num_layers: int = 14,           # Layers besides the input and ToRGB.
        num_critical: int = 2,          # Critically sampled layers at the end.
        first_cutoff: float = 2,        # Cutoff of the first layer.
        first_stopband: float = 2 ** 2.1,
        last_stopband_rel: float = 2 ** 0.3,  # Last stopband relative to the last cutoff.
        margin_size: int = 10,          # Extra samples on each side of the intermediate feature maps.
        output_scale: float = 0.25,     # Scale of the output image.
        num_fp16_res: int = 4,          # float16 (CUDA) where sampling_rate * 2**num_fp16_res > img_resolution.
        **layer_kwargs,                 # Passed on to SynthesisLayer.
    ):
        super().__init__()
        self.w_dim = w_dim
        self.num_ws = num_layers + 2
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.num_layers = num_layers
        self.num_critical = num_critical
        self.margin_size = margin_size
        self.output_scale = output_scale
        self.num_fp16_res = num_fp16_res

        sched = layer_schedule(img_resolution, num_layers=num_layers, num_critical=num_critical,
                               first_cutoff=first_cutoff, first_stopband=first_stopband,
                               last_stopband_rel=last_stopband_rel, margin_size=margin_size)
        cutoffs, sampling_rates = sched['cutoffs'], sched['sampling_rates']
        half_widths, sizes = sched['half_widths'], sched['sizes']
        channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
        channels[-1] = img_channels

        self.input = SynthesisInput(w_dim=w_dim, channels=int(channels[0]), size=int(sizes[0]),
                                    sampling_rate=sampling_rates[0], bandwidth=cutoffs[0])
        self.layer_names = []
        for idx in range(num_layers + 1):
            prev = max(idx - 1, 0)
            layer = SynthesisLayer(
                w_dim=w_dim, is_torgb=(idx == num_layers), is_critically_sampled=(idx >= num_layers - num_critical),
                use_fp16=bool(sampling_rates[idx] * (2 ** num_fp16_res) > img_resolution),
                in_channels=int(channels[prev]), out_channels=int(channels[idx]),
                in_size=int(sizes[prev]), out_size=int(sizes[idx]),
                in_sampling_rate=int(sampling_rates[prev]), out_sampling_rate=int(sampling_rates[idx]),
                in_cutoff=cutoffs[prev], out_cutoff=cutoffs[idx],
                in_half_width=half_widths[prev], out_half_width=half_widths[idx],
                **layer_kwargs)
            name = f'L{idx}_{layer.out_size[0]}_{layer.out_channels}'
            setattr(self, name, layer)
            self.layer_names.append(name)

    def forward(self, ws: torch.Tensor, **layer_kwargs) -> torch.Tensor:
        """ws: [N, num_ws, w_dim] -> image [N, img_channels, img_resolution, img_resolution] float32.

        Keywords: noise_mode (ignored), force_fp32, update_emas."""
        misc.assert_shape(ws, [None, self.num_ws, self.w_dim])
        ws = ws.to(torch.float32).unbind(dim=1)
        x = self.input(ws[0])
        for name, w in zip(self.layer_names, ws[1:]):
            x = getattr(self, name)(x, w, **layer_kwargs)
        if self.output_scale != 1:
            x = x * self.output_scale
        return x.to(torch.float32)

    def extra_repr(self) -> str:
        return (f'w_dim={self.w_dim:d}, num_ws={self.num_ws:d}, img_resolution={self.img_resolution:d}, '
                f'img_channels={self.img_channels:d}, num_layers={self.num_layers:d}, '
                f'num_critical={self.num_critical:d}, margin_size={self.margin_size:d}, '
                f'num_fp16_res={self.num_fp16_res:d}')

#----------------------------------------------------------------------------

@persistence.persistent_class
class Generator(torch.nn.Module):
    """G(z, c) = synthesis(mapping(z, c)). Attributes z_dim, c_dim, w_dim, img_resolution,
    img_channels, num_ws; submodules `mapping` and `synthesis` (with `synthesis.input.transform`)."""

    def __init__(self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        mapping_kwargs: dict = {},      # Passed on to MappingNetwork.
        **synthesis_kwargs,             # Passed on to SynthesisNetwork (and its layers).
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                          **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None, truncation_psi: float = 1,
                truncation_cutoff: int | None = None, update_emas: bool = False, **synthesis_kwargs) -> torch.Tensor:
        """z: [N, z_dim], c: [N, c_dim] (or None when c_dim == 0) -> [N, img_channels, H, W] float32."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)

#----------------------------------------------------------------------------

"""GAN losses for training the StyleGAN2/StyleGAN3 generators.

`StyleGAN2Loss` is the objective of the StyleGAN2 paper (Karras et al. 2020, "Analyzing and Improving
the Image Quality of StyleGAN") as StyleGAN2-ADA and StyleGAN3 train with it:

- the non-saturating logistic loss (Goodfellow et al. 2014): G minimises softplus(-D(G(z))),
  D minimises softplus(D(G(z))) + softplus(-D(x));
- R1 regularisation of D on reals (Mescheder et al. 2018): gamma/2 * |grad_x D(x)|^2;
- path-length regularisation of G (StyleGAN2 section 3.2): the Jacobian norm |J_w^T y| for random
  image-space directions y is pulled toward its running mean;
- style mixing regularisation (StyleGAN section 3.1): a random share of the batch takes its later
  ws from a second latent;
- the StyleGAN3-R warm-up: images shown to D are blurred with a Gaussian whose sigma fades from
  `blur_init_sigma` to 0 during the first `blur_fade_kimg` thousand images (StyleGAN3 appendix D).

Lazy regularisation (StyleGAN2 appendix B): the regularisers are evaluated in their own phases
('Greg', 'Dreg'), every `G_reg_interval` / `D_reg_interval` steps, with the loss scaled by the
interval (the `gain` argument). A phase 'Xboth' evaluates the main loss and the regulariser together
(no lazy regularisation).

Images are NCHW float32 in about [-1, 1]; labels c are [N, c_dim] float32; latents z are [N, z_dim].
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from torch_utils import training_stats
from torch_utils.ops import conv2d_gradfix, upfirdn2d

PHASES = ('Gmain', 'Greg', 'Gboth', 'Dmain', 'Dreg', 'Dboth')

#----------------------------------------------------------------------------

class Loss:
    """Interface of a training loss: accumulate the gradients of one phase for one round of a batch."""

    def accumulate_gradients(self, phase: str, real_img: torch.Tensor, real_c: torch.Tensor, gen_z: torch.Tensor,
                             gen_c: torch.Tensor, gain: float, cur_nimg: int) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """State to carry across a resume (running means and the like)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

#----------------------------------------------------------------------------
# Gaussian blur of the images shown to D (StyleGAN3-R warm-up).

def gaussian_taps(sigma: float) -> torch.Tensor:
    """1-D Gaussian of standard deviation `sigma` (pixels), cut at 3 sigma, normalised to sum 1."""
    radius = int(np.floor(sigma * 3))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    taps = torch.exp(-0.5 * (x / sigma).square())
    return taps / taps.sum()


def blur_sigma_at(cur_nimg: int, blur_init_sigma: float, blur_fade_kimg: float) -> float:
    """Sigma of the D-input blur after `cur_nimg` images: linear fade from `blur_init_sigma` to 0."""
    if blur_fade_kimg <= 0:
        return 0.0
    return max(1 - cur_nimg / (blur_fade_kimg * 1e3), 0) * blur_init_sigma

#----------------------------------------------------------------------------

class StyleGAN2Loss(Loss):
    """Non-saturating logistic loss with lazy R1, path-length and style-mixing regularisation.

    Args (names and defaults as published, see the module docstring for the terms):
        device:             Device of the running path-length mean.
        G, D:               Generator (with `mapping` / `synthesis`) and discriminator.
        augment_pipe:       Applied to every image D sees (reals and fakes), or None.
        r1_gamma:           R1 weight (`--gamma`); 0 disables the D regularisation phase.
        style_mixing_prob:  Share of generated images whose later ws come from a second latent.
        pl_weight:          Path-length weight; 0 disables the G regularisation phase.
        pl_batch_shrink:    The path-length pass uses `batch // pl_batch_shrink` images.
        pl_decay:           Update rate of the running mean path length.
        pl_no_weight_grad:  Skip convolution weight gradients inside the path-length Jacobian (faster;
                            the penalty's gradient still reaches the weights through the images).
        blur_init_sigma:    Initial sigma (pixels) of the blur applied to D's inputs; 0 = no blur.
        blur_fade_kimg:     Thousands of images over which the blur fades out.
        real_logits_observer: Called with D's logits for every batch of reals (ADA's feedback).
    """

    def __init__(self, device: torch.device, G: torch.nn.Module, D: torch.nn.Module,
                 augment_pipe: torch.nn.Module | None = None, r1_gamma: float = 10, style_mixing_prob: float = 0,
                 pl_weight: float = 0, pl_batch_shrink: int = 2, pl_decay: float = 0.01,
                 pl_no_weight_grad: bool = False, blur_init_sigma: float = 0, blur_fade_kimg: float = 0,
                 real_logits_observer: Callable[[torch.Tensor], None] | None = None):
        super().__init__()
        self.device = torch.device(device)
        self.G = G
        self.D = D
        self.augment_pipe = augment_pipe
        self.r1_gamma = float(r1_gamma)
        self.style_mixing_prob = float(style_mixing_prob)
        self.pl_weight = float(pl_weight)
        self.pl_batch_shrink = int(pl_batch_shrink)
        self.pl_decay = float(pl_decay)
        self.pl_no_weight_grad = bool(pl_no_weight_grad)
        self.blur_init_sigma = float(blur_init_sigma)
        self.blur_fade_kimg = float(blur_fade_kimg)
        self.real_logits_observer = real_logits_observer
        self.pl_mean = torch.zeros([], device=self.device)  # running mean of the path lengths

    # State carried across a resume.

    def state_dict(self) -> dict:
        return {'pl_mean': self.pl_mean.detach().cpu().clone()}

    def load_state_dict(self, state: dict) -> None:
        self.pl_mean.copy_(state['pl_mean'].to(self.device))

    # Forward passes.

    def run_G(self, z: torch.Tensor, c: torch.Tensor, update_emas: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Images [N, C, H, W] and the ws [N, num_ws, w_dim] they were made from (with style mixing)."""
        ws = self.G.mapping(z, c, update_emas=update_emas)
        if self.style_mixing_prob > 0:
            with torch.autograd.profiler.record_function('style_mixing'):
                ws = self._mix_styles(ws, z, c)
        img = self.G.synthesis(ws, update_emas=update_emas)
        return img, ws

    def _mix_styles(self, ws: torch.Tensor, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        # One crossover point for the batch, drawn in [1, num_ws); with probability 1 - p it is num_ws,
        # i.e. no mixing. The ws from the crossover on come from a second, independent latent.
        num_ws = ws.shape[1]
        cutoff = torch.randint(1, num_ws, [], device=ws.device)
        mix = torch.rand([], device=ws.device) < self.style_mixing_prob
        cutoff = torch.where(mix, cutoff, torch.full_like(cutoff, num_ws))
        ws2 = self.G.mapping(torch.randn_like(z), c, update_emas=False)
        later = torch.arange(num_ws, device=ws.device)[None, :, None] >= cutoff
        return torch.where(later, ws2, ws)

    def run_D(self, img: torch.Tensor, c: torch.Tensor, blur_sigma: float = 0,
              update_emas: bool = False) -> torch.Tensor:
        """Logits [N, 1] of D for `img`, after the warm-up blur and the augmentations."""
        if blur_sigma > 0:
            with torch.autograd.profiler.record_function('blur'):
                img = upfirdn2d.filter2d(img, gaussian_taps(blur_sigma).to(img.device))
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        return self.D(img, c, update_emas=update_emas)

    # Phases.

    def accumulate_gradients(self, phase: str, real_img: torch.Tensor, real_c: torch.Tensor, gen_z: torch.Tensor,
                             gen_c: torch.Tensor, gain: float, cur_nimg: int) -> None:
        """Back-propagate the loss of `phase` (one of PHASES) for one round, scaled by `gain`.

        real_img: [N, C, H, W] float32 in [-1, 1]; real_c, gen_c: [N, c_dim]; gen_z: [N, z_dim].
        Gradients accumulate into the parameters that require them (the training loop enables
        those of the module the phase trains)."""
        assert phase in PHASES, phase
        if self.pl_weight == 0:
            phase = {'Greg': 'none', 'Gboth': 'Gmain'}.get(phase, phase)
        if self.r1_gamma == 0:
            phase = {'Dreg': 'none', 'Dboth': 'Dmain'}.get(phase, phase)
        blur_sigma = blur_sigma_at(cur_nimg, self.blur_init_sigma, self.blur_fade_kimg)

        if phase in ('Gmain', 'Gboth'):
            self._generator_main(gen_z, gen_c, blur_sigma, gain)
        if phase in ('Greg', 'Gboth'):
            self._path_length_reg(gen_z, gen_c, gain)
        loss_Dgen = 0
        if phase in ('Dmain', 'Dboth'):
            loss_Dgen = self._discriminator_fakes(gen_z, gen_c, blur_sigma, gain)
        if phase in ('Dmain', 'Dreg', 'Dboth'):
            self._discriminator_reals(real_img, real_c, blur_sigma, gain, loss_Dgen,
                                      main=phase in ('Dmain', 'Dboth'), reg=phase in ('Dreg', 'Dboth'))

    def _generator_main(self, gen_z, gen_c, blur_sigma, gain) -> None:
        # G: maximise log D(G(z)), i.e. minimise softplus(-logits).
        with torch.autograd.profiler.record_function('Gmain_forward'):
            gen_img, _ws = self.run_G(gen_z, gen_c)
            gen_logits = self.run_D(gen_img, gen_c, blur_sigma=blur_sigma)
            training_stats.report('Loss/scores/fake', gen_logits)
            training_stats.report('Loss/signs/fake', gen_logits.sign())
            loss_Gmain = torch.nn.functional.softplus(-gen_logits)
            training_stats.report('Loss/G/loss', loss_Gmain)
        with torch.autograd.profiler.record_function('Gmain_backward'):
            loss_Gmain.mean().mul(gain).backward()

    def _path_length_reg(self, gen_z, gen_c, gain) -> None:
        # Path length |J_w^T y| for y ~ N(0, I) / sqrt(H * W), pulled toward its running mean.
        with torch.autograd.profiler.record_function('Gpl_forward'):
            batch_size = max(gen_z.shape[0] // self.pl_batch_shrink, 1)
            gen_img, gen_ws = self.run_G(gen_z[:batch_size], gen_c[:batch_size])
            pl_noise = torch.randn_like(gen_img) / np.sqrt(gen_img.shape[2] * gen_img.shape[3])
            with torch.autograd.profiler.record_function('pl_grads'), \
                    conv2d_gradfix.no_weight_gradients(self.pl_no_weight_grad):
                pl_grads = torch.autograd.grad(outputs=[(gen_img * pl_noise).sum()], inputs=[gen_ws],
                                               create_graph=True, only_inputs=True)[0]
            pl_lengths = pl_grads.square().sum(2).mean(1).sqrt()
            pl_mean = self.pl_mean.lerp(pl_lengths.mean(), self.pl_decay)
            self.pl_mean.copy_(pl_mean.detach())
            pl_penalty = (pl_lengths - pl_mean).square()
            training_stats.report('Loss/pl_penalty', pl_penalty)
            loss_Gpl = pl_penalty * self.pl_weight
            training_stats.report('Loss/G/reg', loss_Gpl)
        with torch.autograd.profiler.record_function('Gpl_backward'):
            loss_Gpl.mean().mul(gain).backward()

    def _discriminator_fakes(self, gen_z, gen_c, blur_sigma, gain) -> torch.Tensor:
        # D: minimise softplus(D(G(z))). This pass also updates G's running statistics (w_avg,
        # StyleGAN3 magnitude EMAs), as published.
        with torch.autograd.profiler.record_function('Dgen_forward'):
            gen_img, _ws = self.run_G(gen_z, gen_c, update_emas=True)
            gen_logits = self.run_D(gen_img, gen_c, blur_sigma=blur_sigma, update_emas=True)
            training_stats.report('Loss/scores/fake', gen_logits)
            training_stats.report('Loss/signs/fake', gen_logits.sign())
            loss_Dgen = torch.nn.functional.softplus(gen_logits)
        with torch.autograd.profiler.record_function('Dgen_backward'):
            loss_Dgen.mean().mul(gain).backward()
        return loss_Dgen.detach()

    def _discriminator_reals(self, real_img, real_c, blur_sigma, gain, loss_Dgen, main: bool, reg: bool) -> None:
        # D: minimise softplus(-D(x)) (main) and gamma/2 * |grad_x D(x)|^2 (R1, reg). `loss_Dgen`: the
        # per-image loss on fakes of the same round (for the reported total D loss), or 0.
        name = 'Dreal' if main and not reg else 'Dr1' if reg and not main else 'Dreal_Dr1'
        with torch.autograd.profiler.record_function(name + '_forward'):
            real_img_tmp = real_img.detach().requires_grad_(reg)
            real_logits = self.run_D(real_img_tmp, real_c, blur_sigma=blur_sigma)
            training_stats.report('Loss/scores/real', real_logits)
            training_stats.report('Loss/signs/real', real_logits.sign())
            if self.real_logits_observer is not None:
                self.real_logits_observer(real_logits.detach())

            loss_Dreal = 0
            if main:
                loss_Dreal = torch.nn.functional.softplus(-real_logits)
                training_stats.report('Loss/D/loss', loss_Dgen + loss_Dreal)

            loss_Dr1 = 0
            if reg:
                # Only the gradient with respect to the image is needed here; the weight gradients
                # of the R1 term come from the backward pass below.
                with torch.autograd.profiler.record_function('r1_grads'), conv2d_gradfix.no_weight_gradients():
                    r1_grads = torch.autograd.grad(outputs=[real_logits.sum()], inputs=[real_img_tmp],
                                                   create_graph=True, only_inputs=True)[0]
                r1_penalty = r1_grads.square().sum([1, 2, 3])
                loss_Dr1 = r1_penalty * (self.r1_gamma / 2)
                training_stats.report('Loss/r1_penalty', r1_penalty)
                training_stats.report('Loss/D/reg', loss_Dr1)
        with torch.autograd.profiler.record_function(name + '_backward'):
            (loss_Dreal + loss_Dr1).mean().mul(gain).backward()

#----------------------------------------------------------------------------

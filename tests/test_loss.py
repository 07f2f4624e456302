"""training/loss.py against closed forms, with small stand-in networks whose gradients are known."""

import numpy as np
import pytest
import torch

from torch_utils import training_stats
from training.loss import StyleGAN2Loss, blur_sigma_at, gaussian_taps

#----------------------------------------------------------------------------
# Stand-ins with the spec's G / D interface.

class LinearMapping(torch.nn.Module):
    def __init__(self, z_dim, w_dim, num_ws):
        super().__init__()
        self.num_ws = num_ws
        self.fc = torch.nn.Linear(z_dim, w_dim)

    def forward(self, z, c, update_emas=False, **kwargs):
        return self.fc(z)[:, None, :].repeat(1, self.num_ws, 1)


class LinearSynthesis(torch.nn.Module):
    """img = A @ flatten(ws), reshaped to [N, C, H, W]."""

    def __init__(self, w_dim, num_ws, shape):
        super().__init__()
        self.shape = shape
        self.A = torch.nn.Parameter(torch.randn(int(np.prod(shape)), num_ws * w_dim) * 0.1)

    def forward(self, ws, update_emas=False, **kwargs):
        return (ws.flatten(1) @ self.A.t()).reshape(-1, *self.shape)


class StubG(torch.nn.Module):
    def __init__(self, z_dim=4, w_dim=3, num_ws=5, shape=(1, 4, 4)):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, 0, w_dim, num_ws
        self.mapping = LinearMapping(z_dim, w_dim, num_ws)
        self.synthesis = LinearSynthesis(w_dim, num_ws, shape)


class LinearD(torch.nn.Module):
    """D(x) = sum(w * x) per image."""

    def __init__(self, shape=(1, 4, 4)):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(shape))
        self.seen = None

    def forward(self, img, c, update_emas=False):
        self.seen = img.detach()
        return (img * self.w).sum([1, 2, 3])[:, None]


class QuadraticD(torch.nn.Module):
    """D(x) = 0.5 * sum(w * x^2): grad_x D = w * x, so the R1 penalty is sum((w * x)^2)."""

    def __init__(self, shape=(1, 4, 4)):
        super().__init__()
        self.w = torch.nn.Parameter(torch.rand(shape) + 0.5)

    def forward(self, img, c, update_emas=False):
        return 0.5 * (self.w * img.square()).sum([1, 2, 3])[:, None]


def _inputs(n=6, shape=(1, 4, 4), z_dim=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn([n, *shape], generator=g), torch.zeros([n, 0]),
            torch.randn([n, z_dim], generator=g), torch.zeros([n, 0]))

#----------------------------------------------------------------------------

def test_discriminator_main_loss_gradient_is_the_logistic_loss_gradient():
    torch.manual_seed(0)
    G, D = StubG(), LinearD()
    loss = StyleGAN2Loss(device='cpu', G=G, D=D, r1_gamma=1)
    real, real_c, z, c = _inputs()
    D.requires_grad_(True)
    G.requires_grad_(False)
    loss.accumulate_gradients('Dmain', real, real_c, z, c, gain=3, cur_nimg=0)

    with torch.no_grad():
        fake = G.synthesis(G.mapping(z, c))
        w = D.w
        # d/dw [mean softplus(D(fake)) + mean softplus(-D(real))]
        s_fake = torch.sigmoid((fake * w).sum([1, 2, 3]))
        s_real = torch.sigmoid(-(real * w).sum([1, 2, 3]))
        expected = (s_fake[:, None, None, None] * fake).mean(0) - (s_real[:, None, None, None] * real).mean(0)
    torch.testing.assert_close(D.w.grad, 3 * expected, rtol=1e-5, atol=1e-6)
    assert G.synthesis.A.grad is None  # D's phase leaves G alone


def test_generator_main_loss_gradient_is_non_saturating():
    torch.manual_seed(1)
    G, D = StubG(), LinearD()
    loss = StyleGAN2Loss(device='cpu', G=G, D=D)
    real, real_c, z, c = _inputs()
    G.requires_grad_(True)
    D.requires_grad_(False)
    loss.accumulate_gradients('Gmain', real, real_c, z, c, gain=1, cur_nimg=0)

    # d/dA mean softplus(-D(A ws)) = mean -sigmoid(-D) * w (x) ws
    with torch.no_grad():
        ws = G.mapping(z, c).flatten(1)
        fake = (ws @ G.synthesis.A.t()).reshape(-1, 1, 4, 4)
        s = torch.sigmoid(-(fake * D.w).sum([1, 2, 3]))
        expected = -(s[:, None, None] * D.w.flatten()[None, :, None] * ws[:, None, :]).mean(0)
    torch.testing.assert_close(G.synthesis.A.grad, expected, rtol=1e-5, atol=1e-6)
    assert D.w.grad is None


def test_r1_penalty_gradient_matches_closed_form():
    torch.manual_seed(2)
    G, D = StubG(), QuadraticD()
    gamma = 0.7
    loss = StyleGAN2Loss(device='cpu', G=G, D=D, r1_gamma=gamma)
    real, real_c, z, c = _inputs()
    D.requires_grad_(True)
    loss.accumulate_gradients('Dreg', real, real_c, z, c, gain=16, cur_nimg=0)
    # loss = gamma/2 * mean_n sum (w x_n)^2  ->  d/dw = gamma * mean_n w x_n^2
    expected = gamma * (D.w.detach() * real.square()).mean(0)
    torch.testing.assert_close(D.w.grad, 16 * expected, rtol=1e-5, atol=1e-6)


def test_disabled_regularisers_skip_their_phases():
    torch.manual_seed(3)
    G, D = StubG(), QuadraticD()
    loss = StyleGAN2Loss(device='cpu', G=G, D=D, r1_gamma=0, pl_weight=0)
    real, real_c, z, c = _inputs()
    D.requires_grad_(True)
    loss.accumulate_gradients('Dreg', real, real_c, z, c, gain=1, cur_nimg=0)
    assert D.w.grad is None
    G.requires_grad_(True)
    D.requires_grad_(False)
    loss.accumulate_gradients('Greg', real, real_c, z, c, gain=1, cur_nimg=0)
    assert G.synthesis.A.grad is None and float(loss.pl_mean) == 0

    # 'Dboth' without R1 is exactly 'Dmain'.
    D.requires_grad_(True)
    G.requires_grad_(False)
    loss.accumulate_gradients('Dboth', real, real_c, z, c, gain=1, cur_nimg=0)
    both = D.w.grad.clone()
    D.w.grad = None
    loss.accumulate_gradients('Dmain', real, real_c, z, c, gain=1, cur_nimg=0)
    torch.testing.assert_close(D.w.grad, both, rtol=0, atol=0)


def test_path_length_regularisation_tracks_the_mean_and_penalises_the_deviation():
    torch.manual_seed(4)
    G, D = StubG(), LinearD()
    loss = StyleGAN2Loss(device='cpu', G=G, D=D, pl_weight=2, pl_batch_shrink=2, pl_decay=0.01)
    real, real_c, z, c = _inputs(n=6)
    G.requires_grad_(True)
    collector = training_stats.Collector(regex='Loss/pl_penalty', keep_previous=False)

    torch.manual_seed(123)
    loss.accumulate_gradients('Greg', real, real_c, z, c, gain=4, cur_nimg=0)
    collector.update()

    # Same draw of the image-space noise: the Jacobian of a linear G is A, so J^T y = A^T y per ws.
    torch.manual_seed(123)
    with torch.no_grad():
        y = torch.randn([3, 1, 4, 4]) / 4.0
        jty = (y.flatten(1) @ G.synthesis.A).reshape(3, G.num_ws, G.w_dim)
        lengths = jty.square().sum(2).mean(1).sqrt()
        pl_mean = 0.01 * lengths.mean()
    torch.testing.assert_close(loss.pl_mean, pl_mean, rtol=1e-5, atol=1e-7)
    assert collector.num('Loss/pl_penalty') == 3  # batch // pl_batch_shrink images
    assert collector.mean('Loss/pl_penalty') == pytest.approx(float((lengths - pl_mean).square().mean()), rel=1e-4)
    assert G.synthesis.A.grad is not None and torch.isfinite(G.synthesis.A.grad).all()
    assert float(G.synthesis.A.grad.abs().sum()) > 0

    state = loss.state_dict()
    other = StyleGAN2Loss(device='cpu', G=G, D=D, pl_weight=2)
    other.load_state_dict(state)
    assert float(other.pl_mean) == float(loss.pl_mean)


def test_style_mixing_takes_later_ws_from_a_second_latent():
    torch.manual_seed(5)
    G, D = StubG(num_ws=6), LinearD()
    _real, _rc, z, c = _inputs()
    plain = G.mapping(z, c)

    never = StyleGAN2Loss(device='cpu', G=G, D=D, style_mixing_prob=0)
    _img, ws = never.run_G(z, c)
    torch.testing.assert_close(ws, plain, rtol=0, atol=0)

    always = StyleGAN2Loss(device='cpu', G=G, D=D, style_mixing_prob=1)
    cutoffs = set()
    for _ in range(20):
        _img, ws = always.run_G(z, c)
        same = (ws == plain).all(dim=2).all(dim=0)  # [num_ws]
        k = int(same.long().argmin())  # first ws that differs
        assert 1 <= k < 6 and same[:k].all() and not same[k:].any()
        cutoffs.add(k)
    assert len(cutoffs) > 1  # the crossover point is random


def test_blur_schedule_and_kernel():
    assert blur_sigma_at(0, 10, 50) == 10
    assert blur_sigma_at(25_000, 10, 50) == pytest.approx(5)
    assert blur_sigma_at(50_000, 10, 50) == 0 and blur_sigma_at(80_000, 10, 50) == 0
    assert blur_sigma_at(0, 10, 0) == 0
    taps = gaussian_taps(2.0)
    assert taps.shape == (13,) and float(taps.sum()) == pytest.approx(1)
    x = torch.arange(-6, 7, dtype=torch.float32)
    assert float((taps * x.square()).sum()) == pytest.approx(4.0, rel=0.02)  # variance sigma^2


def test_discriminator_sees_blurred_images_during_the_fade():
    torch.manual_seed(6)
    G, D = StubG(shape=(1, 16, 16)), LinearD(shape=(1, 16, 16))
    loss = StyleGAN2Loss(device='cpu', G=G, D=D, blur_init_sigma=2, blur_fade_kimg=1)
    impulse = torch.zeros([1, 1, 16, 16])
    impulse[0, 0, 8, 8] = 1
    loss.run_D(impulse, torch.zeros([1, 0]), blur_sigma=blur_sigma_at(0, 2, 1))
    taps = gaussian_taps(2.0)
    expected = torch.zeros([16, 16])
    expected[2:15, 2:15] = taps[:, None] * taps[None, :]
    torch.testing.assert_close(D.seen[0, 0], expected, rtol=1e-5, atol=1e-7)
    loss.run_D(impulse, torch.zeros([1, 0]), blur_sigma=blur_sigma_at(1000, 2, 1))
    torch.testing.assert_close(D.seen, impulse, rtol=0, atol=0)


def test_real_logits_reach_the_observer():
    G, D = StubG(), LinearD()
    seen = []
    loss = StyleGAN2Loss(device='cpu', G=G, D=D, r1_gamma=1, real_logits_observer=seen.append)
    real, real_c, z, c = _inputs(n=4)
    D.requires_grad_(True)
    loss.accumulate_gradients('Dmain', real, real_c, z, c, gain=1, cur_nimg=0)
    assert len(seen) == 1 and seen[0].shape == (4, 1)
    torch.testing.assert_close(seen[0], (real * D.w).sum([1, 2, 3])[:, None].detach())

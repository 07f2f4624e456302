"""training/rendering.py: loading a generator, class labels, the StyleGAN3 input transform,
`render_frames` (re-batching, one pass), latents from seeds and walks through key latents."""

import numpy as np
import pytest
import torch
from pose_video_helpers import one_thread, save_snapshot, tiny_generator

import dnnlib
from training import rendering

#----------------------------------------------------------------------------

@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def G():
    return tiny_generator(seed=0, resolution=16)

#----------------------------------------------------------------------------
# Loading, labels, input transform.

def test_load_generator_and_class_label(G, tmp_path):
    loaded = rendering.load_generator(save_snapshot(G, str(tmp_path / "G.pkl")), torch.device("cpu"))
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    for a, b in zip(loaded.state_dict().values(), G.state_dict().values()):
        assert torch.equal(a, b)
    assert rendering.class_label(loaded, None, torch.device("cpu")) is None
    with pytest.raises(dnnlib.UserError, match="unconditional"):
        rendering.class_label(loaded, 0, torch.device("cpu"))


def test_make_transform():
    assert np.allclose(rendering.make_transform((0, 0), 0), np.eye(3))
    m = rendering.make_transform((0.25, -0.5), 90)
    assert np.allclose(m, [[0, 1, 0.25], [-1, 0, -0.5], [0, 0, 1]])
    # Rotation part is orthonormal; translation is applied after rotation.
    m = rendering.make_transform((0.1, 0.2), 33)
    assert np.allclose(m[:2, :2] @ m[:2, :2].T, np.eye(2))
    assert np.allclose(m @ [0, 0, 1], [0.1, 0.2, 1])


def test_set_input_transform_writes_the_inverse():
    G = tiny_generator(seed=0, resolution=16)  # a private copy: the transform is state
    rendering.set_input_transform(G, (0.1, -0.2), 30)
    m = G.synthesis.input.transform.double().numpy()
    assert np.allclose(m @ rendering.make_transform((0.1, -0.2), 30), np.eye(3), atol=1e-6)

#----------------------------------------------------------------------------
# Frames.

def test_render_frames_rebatches_and_matches_one_pass(G):
    ws = G.mapping(torch.randn(9, G.z_dim), None)
    chunks = [ws[:3], ws[3:4], ws[4:]]
    batches = list(rendering.render_frames(G, iter(chunks), batch=4, device="cpu"))
    assert [b.shape[0] for b in batches] == [4, 4, 1]
    assert all(b.dtype == np.uint8 and b.shape[1:] == (16, 16, 3) for b in batches)
    ref = next(rendering.render_frames(G, iter([ws]), batch=9, device="cpu"))
    got = np.concatenate(batches)
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1
    with pytest.raises(ValueError, match="expected"):
        next(rendering.render_frames(G, iter([ws[:, :1]]), batch=4, device="cpu"))


def test_truncate_ws_lerps_toward_the_average(G):
    ws = torch.randn(3, G.num_ws, G.w_dim)
    w_avg = torch.randn(G.w_dim)
    out = list(rendering.truncate_ws(iter([ws]), w_avg, 0.25))[0]
    torch.testing.assert_close(out, w_avg + 0.25 * (ws - w_avg))
    assert list(rendering.truncate_ws(iter([ws]), w_avg, 1))[0] is ws

#----------------------------------------------------------------------------
# Latents and walks.

@pytest.mark.parametrize("kind", ["cubic", "linear"])
def test_make_walk_passes_keys_and_loops(kind):
    keys = np.random.default_rng(0).standard_normal((4, 3, 5)).astype(np.float32)
    loop = rendering.make_walk(keys, kind=kind, loop=True)
    np.testing.assert_allclose(loop(np.arange(4.0)), keys, atol=1e-5)
    np.testing.assert_allclose(loop(np.array([4.0, 5.5])), loop(np.array([0.0, 1.5])), atol=1e-5)
    line = rendering.make_walk(keys, kind=kind, loop=False)
    np.testing.assert_allclose(line(np.arange(4.0)), keys, atol=1e-5)
    mid = line(np.array([1.5]))[0]
    if kind == "linear":
        np.testing.assert_allclose(mid, (keys[1] + keys[2]) / 2, atol=1e-5)
    else:
        assert np.abs(mid - (keys[1] + keys[2]) / 2).max() > 1e-3  # a curve, not a chord
    # Cubic walks have a continuous first derivative at the keys.
    if kind == "cubic":
        eps = 1e-3
        left = (line(np.array([2.0])) - line(np.array([2 - eps]))) / eps
        right = (line(np.array([2 + eps])) - line(np.array([2.0]))) / eps
        np.testing.assert_allclose(left, right, atol=1e-2)


def test_seeds_match_gen_images_convention(G):
    ws = rendering.seeds_to_ws(G, [7], 1.0, "cpu")
    z = torch.from_numpy(np.random.RandomState(7).randn(1, G.z_dim)).float()
    np.testing.assert_allclose(ws, G.mapping(z, None).numpy(), rtol=1e-5, atol=1e-6)

#----------------------------------------------------------------------------

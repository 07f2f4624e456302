"""The pose-to-latent LSTM: learning a known pose -> W function, exact resume, the checkpoint and
its generator identity, streaming inference and smoothing, validation on real poses."""

import dataclasses
import json
import logging
import os
import pickle
import shutil

import numpy as np
import pytest
import scipy.ndimage
import torch
from click.testing import CliRunner
from pose_video_helpers import one_thread, pose_slice, save_snapshot, synthetic_pairs, tiny_generator, write_pose

import dnnlib
import train_pose_lstm
from training import pose_lstm
from utils.pose_features import FeatureSpec, load_pose, make_feature_spec, resample_features

#----------------------------------------------------------------------------

@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def setup(tmp_path_factory, data_dir):
    d = tmp_path_factory.mktemp("lstm")
    G = tiny_generator(seed=0, resolution=16)
    other = tiny_generator(seed=1, resolution=16)
    pairs = d / "pairs"
    synthetic_pairs(str(pairs), [str(data_dir / "testing-original.pose"), str(data_dir / "testing-reduced.pose")],
                    num=12, w_dim=G.w_dim, num_ws=G.num_ws)
    return {"G": G, "network": save_snapshot(G, str(d / "G.pkl")),
            "other_network": save_snapshot(other, str(d / "G-other.pkl")), "pairs": str(pairs)}


def options(setup, outdir, **kw):
    base = dict(pairs=setup["pairs"], network=setup["network"], outdir=str(outdir), steps=6, batch=4, hidden=16,
                window=16, val_every=3, val_fraction=0.25, device="cpu")
    base.update(kw)
    return pose_lstm.TrainOptions(**base)

#----------------------------------------------------------------------------

def test_learns_known_function_far_below_mean_predictor(setup, tmp_path):
    res = pose_lstm.train_pose_lstm(options(setup, tmp_path / "run", steps=300, batch=8, hidden=64, window=32,
                                            val_every=100, lr=2e-3), progress=False)
    assert res["step"] == 300
    assert res["val_mae"] < 0.35 * res["val_mean_predictor_mae"], res
    # What was written: latest + best checkpoints, one stats line per validation, TensorBoard events.
    files = os.listdir(tmp_path / "run")
    assert {"lstm.pt", "lstm-best.pt", "stats.jsonl"} <= set(files)
    assert any(f.startswith("events.out.tfevents") for f in files)
    with open(tmp_path / "run" / "stats.jsonl") as f:
        assert [json.loads(line)["step"] for line in f] == [100, 200, 300]
    # The inference API reproduces the training-time evaluation.
    model, spec, identity = pose_lstm.load_lstm(str(tmp_path / "run" / "lstm.pt"))
    assert identity == pose_lstm.generator_identity(setup["G"])
    assert spec == make_feature_spec()
    pairs = pose_lstm.load_pairs(setup["pairs"], spec, setup["G"].w_dim, setup["G"].num_ws)
    _, val = pose_lstm.split_pairs(pairs, 0.25, 0)
    assert pose_lstm.evaluate_pairs(model, val, torch.device("cpu"))["mae"] == pytest.approx(res["val_mae"], rel=1e-5)


def test_checkpoint_is_one_complete_dict(setup, tmp_path):
    pose_lstm.train_pose_lstm(options(setup, tmp_path), progress=False)
    ckpt = torch.load(tmp_path / "lstm.pt", weights_only=True)
    for key in ("model", "model_config", "optimizer", "step", "config", "feature_spec", "generator", "rng"):
        assert key in ckpt, key
    assert ckpt["step"] == 6
    assert set(ckpt["generator"]) >= {"w_dim", "num_ws", "hash"}
    assert ckpt["model_config"]["num_layers"] == 4 and ckpt["model_config"]["out_features"] == setup["G"].w_dim
    assert "optimizer" not in torch.load(tmp_path / "lstm-best.pt", weights_only=True)


def test_resume_is_exact(setup, tmp_path):
    pose_lstm.train_pose_lstm(options(setup, tmp_path / "straight"), progress=False)
    pose_lstm.train_pose_lstm(options(setup, tmp_path / "split", steps=3), progress=False)
    pose_lstm.train_pose_lstm(options(setup, tmp_path / "split", resume=True), progress=False)
    a = torch.load(tmp_path / "straight" / "lstm.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "lstm.pt", weights_only=True)
    assert a["step"] == b["step"] == 6
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for (ka, sa), (kb, sb) in zip(a["optimizer"]["state"].items(), b["optimizer"]["state"].items()):
        assert all(torch.equal(sa[n], sb[n]) for n in sa)
    assert a["rng"]["numpy"] == b["rng"]["numpy"]


def test_seed_repeats_a_run(setup, tmp_path):
    # The initial weights come from --seed, whatever ran before in the process.
    torch.manual_seed(123)
    pose_lstm.train_pose_lstm(options(setup, tmp_path / "a", steps=1), progress=False)
    torch.manual_seed(456)
    pose_lstm.train_pose_lstm(options(setup, tmp_path / "b", steps=1), progress=False)
    pose_lstm.train_pose_lstm(options(setup, tmp_path / "c", steps=1, seed=1), progress=False)
    a, b, c = (torch.load(tmp_path / n / "lstm.pt", weights_only=True)["model"] for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_resume_with_moved_pairs(setup, tmp_path):
    pairs = tmp_path / "pairs"
    shutil.copytree(setup["pairs"], pairs)
    pose_lstm.train_pose_lstm(options(setup, tmp_path / "run", steps=3, pairs=str(pairs)), progress=False)
    moved = tmp_path / "moved-pairs"
    pairs.rename(moved)
    with pytest.raises(dnnlib.UserError, match=f"The run's pairs folder {pairs} is not there; if it moved, pass "
                                               f"--pairs=<its new place>"):
        pose_lstm.train_pose_lstm(options(setup, tmp_path / "run", resume=True, pairs=None), progress=False)
    with pytest.raises(dnnlib.UserError, match="is not there either"):
        pose_lstm.train_pose_lstm(options(setup, tmp_path / "run", resume=True, pairs=str(tmp_path / "typo")),
                                  progress=False)
    res = pose_lstm.train_pose_lstm(options(setup, tmp_path / "run", resume=True, pairs=str(moved)), progress=False)
    assert res["step"] == 6
    assert torch.load(tmp_path / "run" / "lstm.pt", weights_only=True)["config"]["pairs"] == str(moved)


def test_resume_at_the_last_step_writes_nothing(setup, tmp_path):
    pose_lstm.train_pose_lstm(options(setup, tmp_path, steps=3), progress=False)
    stamp = os.stat(tmp_path / "lstm.pt").st_mtime_ns
    res = pose_lstm.train_pose_lstm(options(setup, tmp_path, resume=True, steps=3), progress=False)
    assert res["nothing_to_do"] and res["step"] == 3 and os.stat(tmp_path / "lstm.pt").st_mtime_ns == stamp
    result = CliRunner().invoke(train_pose_lstm.main, [f"--pairs={setup['pairs']}", f"--network={setup['network']}",
                                                       f"--outdir={tmp_path}", "--steps=2", "--resume",
                                                       "--device=cpu"])
    assert result.exit_code == 0 and "Nothing to do" in result.output and "Wrote" not in result.output


def test_cli_resume_takes_the_runs_options(setup, tmp_path, caplog):
    # `--outdir --resume` alone continues with the run's own options: no --pairs/--network needed, and the
    # CLI's defaults (--hidden=512, ...) are not mistaken for options given, so nothing is warned about.
    pose_lstm.train_pose_lstm(options(setup, tmp_path, steps=3), progress=False)
    with caplog.at_level(logging.WARNING):
        result = CliRunner().invoke(train_pose_lstm.main, [f"--outdir={tmp_path}", "--resume", "--steps=6",
                                                           "--device=cpu"])
    assert result.exit_code == 0, result.output
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    ckpt = torch.load(tmp_path / "lstm.pt", weights_only=True)
    assert ckpt["step"] == 6 and ckpt["config"]["hidden"] == 16 and ckpt["config"]["pairs"] == setup["pairs"]
    # An option given that differs from the run's is kept from the run, with a warning.
    with caplog.at_level(logging.WARNING):
        result = CliRunner().invoke(train_pose_lstm.main, [f"--outdir={tmp_path}", "--resume", "--steps=7",
                                                           "--hidden=32", "--device=cpu"])
    assert result.exit_code == 0, result.output
    assert "keeping the checkpoint's hidden=16 (given 32)" in caplog.text
    assert torch.load(tmp_path / "lstm.pt", weights_only=True)["config"]["hidden"] == 16
    # Without --resume, --pairs and --network are needed.
    result = CliRunner().invoke(train_pose_lstm.main, [f"--outdir={tmp_path / 'new'}", "--device=cpu"])
    assert result.exit_code == 1 and "--pairs is needed" in result.output


def test_resume_may_change_best_by():
    saved = dataclasses.asdict(pose_lstm.TrainOptions(pairs="p", network="G.pkl", outdir="o", val="v"))
    given = pose_lstm.TrainOptions(pairs=None, network=None, outdir="o", best_by="consistency", resume=True,
                                   given=frozenset({"outdir", "best_by", "resume"}))
    merged = pose_lstm._merge_resume_config(given, saved)
    assert (merged.best_by, merged.val, merged.pairs, merged.network) == ("consistency", "v", "p", "G.pkl")


def test_resume_keeps_the_runs_total_unless_given():
    # A run killed on its way to --steps=40 continues to 40 (not the CLI's default of 20000), with its own
    # --preview-frames; both may be given anew.
    saved = dataclasses.asdict(pose_lstm.TrainOptions(pairs="p", network="G.pkl", outdir="o", steps=40,
                                                      preview_frames=2))
    cli = pose_lstm.TrainOptions(pairs=None, network=None, outdir="o", resume=True, given=frozenset({"outdir",
                                                                                                    "resume"}))
    merged = pose_lstm._merge_resume_config(cli, saved)
    assert (merged.steps, merged.preview_frames) == (40, 2)
    more = dataclasses.replace(cli, steps=60, preview_frames=0, given=frozenset({"outdir", "resume", "steps",
                                                                                  "preview_frames"}))
    merged = pose_lstm._merge_resume_config(more, saved)
    assert (merged.steps, merged.preview_frames) == (60, 0)


def test_run_killed_before_its_first_checkpoint(setup, tmp_path):
    # It wrote a stats line, lstm-best.pt and a temporary, but no lstm.pt: --resume says to start again,
    # and a new run does not append to the dead run's statistics or keep its best checkpoint.
    (tmp_path / "stats.jsonl").write_text('{"step": 3, "val_mae": 0.5}\n')
    (tmp_path / "lstm-best.pt").write_bytes(b"from the killed run")
    (tmp_path / ".lstm.pt.abcd1234.tmp").write_bytes(b"torn")
    with pytest.raises(dnnlib.UserError, match="stopped before its first checkpoint.*without --resume"):
        pose_lstm.train_pose_lstm(options(setup, tmp_path, resume=True), progress=False)
    pose_lstm.train_pose_lstm(options(setup, tmp_path, steps=3), progress=False)
    with open(tmp_path / "stats.jsonl") as f:
        assert [json.loads(line)["step"] for line in f] == [3]
    assert pose_lstm.read_checkpoint(str(tmp_path / "lstm-best.pt"))["step"] == 3
    assert not (tmp_path / ".lstm.pt.abcd1234.tmp").exists()


def test_one_process_per_run_folder(setup, tmp_path):
    with dnnlib.util.writing_folder(tmp_path, "is busy"):
        with pytest.raises(dnnlib.UserError, match="is being trained by another process"):
            pose_lstm.train_pose_lstm(options(setup, tmp_path, steps=3), progress=False)
    assert not (tmp_path / "lstm.pt").exists()
    pose_lstm.train_pose_lstm(options(setup, tmp_path, steps=3), progress=False)  # the lock went with the holder


def test_resume_after_a_torn_stats_line(setup, tmp_path):
    pose_lstm.train_pose_lstm(options(setup, tmp_path, steps=3), progress=False)
    with open(tmp_path / "stats.jsonl", "a") as f:
        f.write('{"step": 9, "train_m')  # killed while writing
    pose_lstm.train_pose_lstm(options(setup, tmp_path, resume=True), progress=False)
    with open(tmp_path / "stats.jsonl") as f:
        assert [json.loads(line)["step"] for line in f] == [3, 6]


def test_existing_run_needs_resume_and_same_generator(setup, tmp_path):
    pose_lstm.train_pose_lstm(options(setup, tmp_path, steps=3), progress=False)
    with pytest.raises(dnnlib.UserError, match="--resume"):
        pose_lstm.train_pose_lstm(options(setup, tmp_path), progress=False)
    with pytest.raises(dnnlib.UserError, match="another generator"):
        pose_lstm.train_pose_lstm(options(setup, tmp_path, resume=True, network=setup["other_network"]),
                                  progress=False)


def test_ws_output_mode(setup, tmp_path):
    pose_lstm.train_pose_lstm(options(setup, tmp_path, steps=2, val_every=2, out_mode="ws"), progress=False)
    model, spec, _ = pose_lstm.load_lstm(str(tmp_path / "lstm.pt"))
    G = setup["G"]
    assert model.out_features == G.num_ws * G.w_dim
    ws = pose_lstm.poses_to_ws(model, np.zeros((5, spec.num_features), np.float32))
    assert ws.shape == (5, G.num_ws, G.w_dim)


def test_validation_on_real_poses_and_augmentation(setup, data_dir, tmp_path):
    val = tmp_path / "val"
    val.mkdir()
    write_pose(pose_slice(load_pose(data_dir / "testing-reduced.pose"), range(40, 44)), str(val / "real.pose"))
    res = pose_lstm.train_pose_lstm(options(setup, tmp_path / "run", steps=2, val_every=2, val=str(val), val_frames=3,
                                            augment_with_validation=True, best_by="consistency"), progress=False)
    for key in ("consistency/body_detection", "consistency/left_hand_detection", "consistency/right_hand_detection"):
        assert key in res, res
    assert res["consistency/body_detection"] == 0.0  # a random 16x16 generator shows nobody
    # Nothing found: every part counts as missed; lstm-best.pt was chosen by that score.
    assert res["consistency/score"] == pose_lstm.MISSED_PART_ERROR
    best = pose_lstm.read_checkpoint(str(tmp_path / "run" / "lstm-best.pt"))
    assert best["best_by"] == "consistency" and best["best_score"] == res["consistency/score"]
    # The render's estimated pose and its W were kept as a pair (without a person it cannot train).
    aug = sorted(os.listdir(tmp_path / "run" / "augment"))
    assert aug == ["000002-real.npy", "000002-real.pose"]
    ws = np.load(tmp_path / "run" / "augment" / "000002-real.npy")
    assert ws.shape == (3, setup["G"].num_ws, setup["G"].w_dim)
    assert load_pose(tmp_path / "run" / "augment" / "000002-real.pose", require_hands=False).body.data.shape[0] == 3


def _png(path):
    import PIL.Image
    with PIL.Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_previews_written_with_each_validation(setup, data_dir, tmp_path):
    pose_lstm.train_pose_lstm(options(setup, tmp_path / "plain"), progress=False)
    assert sorted(f for f in os.listdir(tmp_path / "plain") if f.endswith(".png")) == \
        ["preview-000003.png", "preview-000006.png"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(tmp_path / "plain")).Reload()
    assert [e.step for e in events.Images("Preview")] == [3, 6]
    pose_lstm.train_pose_lstm(options(setup, tmp_path / "none", preview_frames=0), progress=False)
    assert not [f for f in os.listdir(tmp_path / "none") if f.endswith(".png")]
    with pytest.raises(dnnlib.UserError, match="--preview-frames"):
        pose_lstm.train_pose_lstm(options(setup, tmp_path / "bad", preview_frames=-1), progress=False)
    # With real validation poses a second section shows the first one: input, render, MediaPipe's reading.
    val = tmp_path / "val"
    val.mkdir()
    write_pose(pose_slice(load_pose(data_dir / "testing-reduced.pose"), range(40, 44)), str(val / "real.pose"))
    pose_lstm.train_pose_lstm(options(setup, tmp_path / "real", steps=3, val=str(val), val_frames=3), progress=False)
    plain, real = _png(tmp_path / "plain" / "preview-000003.png"), _png(tmp_path / "real" / "preview-000003.png")
    tile = pose_lstm.PREVIEW_MIN_TILE  # the 16x16 frames are shown 4x larger
    assert real.shape[0] - plain.shape[0] > 3 * tile


def test_preview_shows_the_pairs_pose_and_both_renders(setup, tmp_path):
    spec = make_feature_spec()
    G = setup["G"]
    pairs = pose_lstm.load_pairs(setup["pairs"], spec, G.w_dim, G.num_ws)
    pair = pairs[0]
    prev = pose_lstm.Preview(G, pair, setup["pairs"], 5, torch.device("cpu"), batch=3, held_out=True)
    assert len(prev.idx) == 5 and prev.idx[0] == np.flatnonzero(pair.valid)[0]
    torch.manual_seed(0)
    model = pose_lstm.PoseLSTM(spec.num_features, G.w_dim, hidden=8, w_dim=G.w_dim, num_ws=G.num_ws)
    sheet = prev.picture(model)
    # Rows of 64x64 tiles (16x16 frames enlarged 4x) right-aligned after the label column, below a title line.
    zoom, tile = 4, 64
    rows = sheet.shape[0] // tile
    assert rows == 3 and sheet.shape[1] >= 5 * tile
    top, left = sheet.shape[0] - 3 * tile, sheet.shape[1] - 5 * tile
    def tile_at(r, c):
        return sheet[top + r * tile:top + (r + 1) * tile, left + c * tile:left + (c + 1) * tile][::zoom, ::zoom]
    target = G.synthesis(torch.from_numpy(np.asarray(pair.ws[prev.idx], np.float32)), noise_mode="const")
    pred = G.synthesis(pose_lstm.poses_to_ws(model, pair.feats)[torch.from_numpy(prev.idx)], noise_mode="const")
    from training.rendering import to_uint8
    for c in range(5):
        assert np.array_equal(tile_at(1, c), to_uint8(target)[c])
        assert np.array_equal(tile_at(2, c), to_uint8(pred)[c])
        assert tile_at(0, c).min() < 128  # a drawn pose on white
    assert not np.array_equal(tile_at(1, 0), tile_at(2, 0))


def test_preview_indices_and_sheet_checks():
    valid = np.zeros(20, bool)
    valid[[2, 3, 5, 8, 13]] = True
    assert pose_lstm.preview_indices(valid, 3).tolist() == [2, 5, 13]
    assert pose_lstm.preview_indices(valid, 10).tolist() == [2, 3, 5, 8, 13]
    assert pose_lstm.preview_indices(np.zeros(4, bool), 3).size == 0
    img = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="sizes"):
        pose_lstm.preview_sheet([("t", [("a", [img, np.zeros((9, 8, 3), np.uint8)])])])


def test_val_without_mediapipe_refused_before_training(setup, data_dir, tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "pose_format.utils.holistic", None)  # as if MediaPipe were not installed
    val = tmp_path / "val"
    val.mkdir()
    write_pose(pose_slice(load_pose(data_dir / "testing-reduced.pose"), range(40, 44)), str(val / "real.pose"))
    with pytest.raises(dnnlib.UserError, match="needs MediaPipe"):
        pose_lstm.train_pose_lstm(options(setup, tmp_path / "run", val=str(val)), progress=False)
    assert not os.path.exists(tmp_path / "run" / "lstm.pt")


def test_augment_and_best_by_consistency_need_val(setup, tmp_path):
    with pytest.raises(dnnlib.UserError, match="--val"):
        pose_lstm.train_pose_lstm(options(setup, tmp_path, augment_with_validation=True), progress=False)
    with pytest.raises(dnnlib.UserError, match="--best-by=consistency needs --val"):
        pose_lstm.train_pose_lstm(options(setup, tmp_path, best_by="consistency"), progress=False)


def test_consistency_score_counts_missed_parts():
    fig = {"body_mae": 0.2, "body_detection": 1.0, "body_matched": 1.0,
           "face_mae": 0.4, "face_detection": 1.5, "face_matched": 0.5,  # found in half the frames (and elsewhere)
           "left_hand_mae": None, "left_hand_detection": 0.0, "left_hand_matched": 0.0}  # never found
    # The right hand is not in the input: it does not count.
    assert pose_lstm.consistency_score(fig) == pytest.approx((0.2 + (0.5 * 0.4 + 0.5 * 1.0) + 1.0) / 3)
    assert pose_lstm.consistency_score({"body_mae": 0.3, "body_matched": 1.0}) == pytest.approx(0.3)

#----------------------------------------------------------------------------
# Data.

def test_windows_are_padded_and_masked(setup):
    spec = make_feature_spec()
    pairs = pose_lstm.load_pairs(setup["pairs"], spec, setup["G"].w_dim, setup["G"].num_ws)
    window = max(len(p) for p in pairs) + 5  # longer than every pair: every window is padded
    x, y, m = pose_lstm.sample_windows(pairs, 16, window, "w", np.random.default_rng(0))
    assert x.shape == (16, window, spec.num_features) and y.shape == (16, window, setup["G"].w_dim)
    assert set(m.sum(1).tolist()) <= {float(len(p)) for p in pairs}  # whole pairs (all frames have a body)
    assert (x[m == 0] == 0).all() and (y[m == 0] == 0).all()
    x, y, m = pose_lstm.sample_windows(pairs, 16, 8, "w", np.random.default_rng(0))
    assert (m == 1).all() and (np.abs(x).sum(-1) > 0).all()  # short windows lie inside the pairs


def test_mismatched_pairs_refused(setup, tmp_path):
    spec = make_feature_spec()
    shutil.copytree(setup["pairs"], tmp_path / "pairs")
    w = np.load(tmp_path / "pairs" / "p000.npy")
    np.save(tmp_path / "pairs" / "p000.npy", w[:-1])
    with pytest.raises(dnnlib.UserError, match="frames"):
        pose_lstm.load_pairs(str(tmp_path / "pairs"), spec, setup["G"].w_dim, setup["G"].num_ws)
    with pytest.raises(dnnlib.UserError, match="another generator"):
        pose_lstm.load_pairs(setup["pairs"], spec, setup["G"].w_dim + 1, setup["G"].num_ws)
    with pytest.raises(dnnlib.UserError, match="No pairs"):
        pose_lstm.load_pairs(str(tmp_path), spec, setup["G"].w_dim, setup["G"].num_ws)


def test_pairs_of_another_generator_refused(setup, tmp_path):
    # make_animations.py records the generator that rendered the walks: an LSTM trained on them learns
    # that generator's latents, so training it for another one is refused (same shapes or not).
    pairs = tmp_path / "pairs"
    shutil.copytree(setup["pairs"], pairs)
    other = pose_lstm.generator_identity(tiny_generator(seed=1, resolution=16))["hash"]
    dnnlib.util.write_json(str(pairs / "walks.json"), {"generator": other, "truncation_psi": 1.0}, "settings")
    with pytest.raises(dnnlib.UserError, match=f"rendered by another generator .*hash {other[:12]} in walks.json"):
        pose_lstm.train_pose_lstm(options(setup, tmp_path / "run", pairs=str(pairs)), progress=False)
    assert not (tmp_path / "run").exists()
    own = pose_lstm.generator_identity(setup["G"])["hash"]
    dnnlib.util.write_json(str(pairs / "walks.json"), {"generator": own, "truncation_psi": 1.0}, "settings")
    pose_lstm.train_pose_lstm(options(setup, tmp_path / "run", pairs=str(pairs), steps=2), progress=False)
    assert (tmp_path / "run" / "lstm.pt").is_file()


def test_cli_bad_input_is_one_line(setup, tmp_path):
    result = CliRunner().invoke(train_pose_lstm.main, [f"--pairs={tmp_path / 'nope'}", f"--network={setup['network']}",
                                                       f"--outdir={tmp_path / 'out'}", "--device=cpu"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Pairs folder not found" in lines[0], result.output


def test_cli_one_pair_names_the_val_fraction_option(setup, tmp_path):
    (tmp_path / "pairs").mkdir()
    for ext in (".pose", ".npy"):
        shutil.copy(os.path.join(setup["pairs"], "p000" + ext), tmp_path / "pairs")
    args = [f"--pairs={tmp_path / 'pairs'}", f"--network={setup['network']}", "--device=cpu", "--steps=1",
            "--batch=2", "--hidden=8", "--window=8", "--preview-frames=0"]
    result = CliRunner().invoke(train_pose_lstm.main, [*args, f"--outdir={tmp_path / 'out'}"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Only 1 pair" in lines[0] and "--val-fraction=0" in lines[0], result.output
    assert not (tmp_path / "out").exists()  # a refused run leaves no folder
    result = CliRunner().invoke(train_pose_lstm.main, [*args, f"--outdir={tmp_path / 'out0'}", "--val-fraction=0"])
    assert result.exit_code == 0, result.output
    # A fraction outside [0, 1) is refused by the option itself.
    result = CliRunner().invoke(train_pose_lstm.main, [*args, f"--outdir={tmp_path / 'out1'}", "--val-fraction=1"])
    assert result.exit_code == 2 and "Invalid value for '--val-fraction'" in result.output, result.output

#----------------------------------------------------------------------------
# Inference helpers.

def test_chunked_inference_equals_one_pass():
    torch.manual_seed(0)
    model = pose_lstm.PoseLSTM(10, 4, hidden=8, w_dim=4, num_ws=3).eval()
    feats = np.random.default_rng(0).standard_normal((23, 10)).astype(np.float32)
    whole = pose_lstm.poses_to_ws(model, feats, chunk=100)
    parts = torch.cat(list(pose_lstm.iter_ws(model, feats, chunk=5)))
    assert whole.shape == (23, 3, 4)
    torch.testing.assert_close(parts, whole, rtol=1e-5, atol=1e-6)
    assert torch.equal(whole[:, 0], whole[:, 2])  # mode 'w': one W for every layer
    with pytest.raises(dnnlib.UserError):
        pose_lstm.poses_to_ws(model, feats[:, :9])


@pytest.mark.parametrize("sigma", [0.7, 2.0])
@pytest.mark.parametrize("sizes", [[40], [1, 2, 3, 30, 4], [7, 1, 1, 1, 30]])
def test_streaming_smoothing_matches_scipy(sigma, sizes):
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((sum(sizes), 2, 3)).astype(np.float32))
    chunks = list(torch.split(x, sizes))
    got = torch.cat(list(pose_lstm.smooth_ws(iter(chunks), sigma)))
    ref = scipy.ndimage.gaussian_filter1d(x.numpy().astype(np.float64), sigma, axis=0, mode="nearest", truncate=3.0)
    assert got.shape == x.shape
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-5)
    assert torch.equal(torch.cat(list(pose_lstm.smooth_ws(iter(chunks), 0))), x)


@pytest.mark.parametrize("fps_out", [12.5, 24.0, 50.0, 61.3])
@pytest.mark.parametrize("sizes", [[37], [1, 2, 3, 30, 1], [10, 10, 10, 7]])
def test_streaming_time_resampling(fps_out, sizes):
    # Against the interpolation of the whole sequence at the frame times of resample_features.
    x = torch.from_numpy(np.random.default_rng(2).standard_normal((sum(sizes), 2, 3)).astype(np.float32))
    chunks = list(torch.split(x, sizes))
    got = torch.cat(list(pose_lstm.resample_ws(iter(chunks), len(x), 25.0, fps_out)))
    flat = x.reshape(len(x), -1).numpy()  # 6 columns: one component of 3 points (x, y), no presence flags
    spec = FeatureSpec(components=(("C", ("a", "b", "c")),), presence=False)
    ref = resample_features(flat, spec, 25.0, fps_out)
    assert got.shape == (pose_lstm.resampled_length(len(x), 25.0, fps_out), 2, 3) == (len(ref), 2, 3)
    np.testing.assert_allclose(got.reshape(len(got), -1).numpy(), ref, atol=1e-6)
    if fps_out == 50.0:  # every other frame is an input frame
        assert torch.equal(got[::2], x)
    assert torch.equal(torch.cat(list(pose_lstm.resample_ws(iter(chunks), len(x), 25.0, 25.0))), x)
    with pytest.raises(ValueError, match="held"):
        list(pose_lstm.resample_ws(iter(chunks), len(x) + 5, 25.0, fps_out))


def test_generator_identity_tells_generators_apart(setup):
    a = pose_lstm.generator_identity(setup["G"])
    assert a == pose_lstm.generator_identity(setup["G"])
    b = pose_lstm.generator_identity(tiny_generator(seed=1, resolution=16))
    assert a["hash"] != b["hash"]
    pose_lstm.check_generator(a, a)
    with pytest.raises(dnnlib.UserError, match="another generator"):
        pose_lstm.check_generator(a, b)
    with pytest.raises(dnnlib.UserError, match="w_dim"):
        pose_lstm.check_generator(a, dict(b, w_dim=a["w_dim"] + 1))


def test_load_lstm_refuses_other_files(tmp_path):
    with pytest.raises(dnnlib.UserError, match="not found"):
        pose_lstm.load_lstm(str(tmp_path / "missing.pt"))
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(dnnlib.UserError, match="not a pose-LSTM checkpoint"):
        pose_lstm.load_lstm(str(tmp_path / "other.pt"))
    (tmp_path / "cut.pt").write_bytes(b"PK\x03\x04truncated")
    with pytest.raises(dnnlib.UserError, match="cut.pt is damaged or truncated"):
        pose_lstm.load_lstm(str(tmp_path / "cut.pt"))
    (tmp_path / "text.pt").write_bytes(b"some notes")
    with pytest.raises(dnnlib.UserError, match="not a pose-LSTM checkpoint; train one"):
        pose_lstm.load_lstm(str(tmp_path / "text.pt"))
    (tmp_path / "G.pkl").write_bytes(pickle.dumps({"G_ema": None}))
    with pytest.raises(dnnlib.UserError, match="looks like a pickle: a network snapshot goes to --network"):
        pose_lstm.load_lstm(str(tmp_path / "G.pkl"))

#----------------------------------------------------------------------------

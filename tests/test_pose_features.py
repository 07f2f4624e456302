"""utils/pose_features.py: reading/validating .pose files and the feature front end."""

import io
import json
import logging

import numpy as np
import pytest
from pose_format import Pose
from pose_format.numpy import NumPyPoseBody
from pose_format.utils.generic import fake_openpose_pose, reduce_holistic

import dnnlib
from utils import pose_features as pf


def _bytes(pose) -> bytes:
    buf = io.BytesIO()
    pose.write(buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def original(data_dir):
    return pf.load_pose(data_dir / "testing-original.pose")


@pytest.fixture(scope="module")
def reduced(data_dir):
    return pf.load_pose(data_dir / "testing-reduced.pose")

#----------------------------------------------------------------------------
# Reading and validation.

def test_load_real_files(original, reduced, data_dir):
    assert original.body.data.shape == (97, 1, 576, 3)
    assert reduced.body.data.shape == (91, 1, 178, 3)
    # bytes work as well as paths
    again = pf.load_pose((data_dir / "testing-reduced.pose").read_bytes())
    np.testing.assert_array_equal(again.body.confidence, reduced.body.confidence)


def test_missing_file(tmp_path):
    with pytest.raises(dnnlib.UserError, match="not found.*nope.pose"):
        pf.load_pose(tmp_path / "nope.pose")
    with pytest.raises(dnnlib.UserError, match="directory"):
        pf.load_pose(tmp_path)


@pytest.mark.parametrize("kind", ["empty", "text", "png", "truncated", "truncated_header", "truncated_v02",
                                  "extended_v02"])
def test_corrupt_file(tmp_path, data_dir, kind, reduced):
    good = (data_dir / "testing-reduced.pose").read_bytes()  # format version 0.1
    v02 = _bytes(reduced)  # pose-format writes version 0.2
    assert pf.load_pose(v02).body.data.shape == reduced.body.data.shape
    content = {
        "truncated_v02": v02[:-1000],
        "extended_v02": v02 + b"\0" * 8,
        "empty": b"",
        "text": b"not a pose file\n" * 200,
        "png": (data_dir / "example-img.png").read_bytes(),
        "truncated": good[: len(good) // 2],
        "truncated_header": good[:300],
    }[kind]
    path = tmp_path / f"{kind}.pose"
    path.write_bytes(content)
    with pytest.raises(dnnlib.UserError, match=f"Not a valid pose file: .*{kind}.pose"):
        pf.load_pose(path)


def test_zero_frames(tmp_path, reduced):
    empty = Pose(reduced.header, NumPyPoseBody(fps=25, data=np.zeros((0, 1, 178, 3), np.float32),
                                               confidence=np.zeros((0, 1, 178), np.float32)))
    path = tmp_path / "zero.pose"
    path.write_bytes(_bytes(empty))
    with pytest.raises(dnnlib.UserError, match="zero frames"):
        pf.load_pose(path)


def test_no_hands(tmp_path, reduced):
    conf = np.array(reduced.body.confidence)
    for hand in (pf.LEFT_HAND, pf.RIGHT_HAND):
        start = reduced.header.get_point_index(hand, "WRIST")
        conf[:, :, start:start + 21] = 0
    handless = Pose(reduced.header, NumPyPoseBody(fps=25, data=np.ma.getdata(reduced.body.data), confidence=conf))
    path = tmp_path / "nohands.pose"
    path.write_bytes(_bytes(handless))
    with pytest.raises(dnnlib.UserError, match="no hand in any of its 91 frames"):
        pf.load_pose(path)
    # Poses estimated from generated frames may lack hands: allowed when asked.
    pose = pf.load_pose(path, require_hands=False)
    feats = pf.features_from_pose(pose, pf.make_feature_spec())
    assert np.all(feats[:, -2:] == 0)


def test_other_formats_refused(tmp_path, reduced):
    path = tmp_path / "openpose.pose"
    path.write_bytes(_bytes(fake_openpose_pose(3)))
    words = "Unsupported pose format.*pose_keypoints_2d.*POSE_LANDMARKS.*utils/estimate_pose.py"
    with pytest.raises(dnnlib.UserError, match=words):
        pf.load_pose(path)
    # Holistic names but a hand-only file: names what is missing.
    hands = reduced.get_components([pf.LEFT_HAND, pf.RIGHT_HAND])
    path = tmp_path / "hands.pose"
    path.write_bytes(_bytes(hands))
    with pytest.raises(dnnlib.UserError, match="missing POSE_LANDMARKS, FACE_LANDMARKS"):
        pf.load_pose(path)
    # A face reduced some other way is not the mesh nor its contours.
    odd = reduced.get_components(list(pf.COMPONENTS), {pf.FACE: [str(i) for i in (0, 7, 10)]})
    path = tmp_path / "face3.pose"
    path.write_bytes(_bytes(odd))
    with pytest.raises(dnnlib.UserError, match="FACE_LANDMARKS has 3 points"):
        pf.load_pose(path)


def test_two_people_are_noted_once(tmp_path, reduced, caplog):
    """A pose of two people is noted once when it is read and used, not at each check on the way."""
    data = np.ma.concatenate([reduced.body.data, reduced.body.data], axis=1)
    conf = np.concatenate([reduced.body.confidence] * 2, axis=1)
    path = tmp_path / "two.pose"
    path.write_bytes(_bytes(Pose(reduced.header, NumPyPoseBody(fps=25, data=data, confidence=conf))))

    def notes():
        return [r.getMessage() for r in caplog.records if "people" in r.getMessage()]

    with caplog.at_level(logging.INFO, logger="utils.pose_features"):
        pose = pf.load_pose(path)
        feats = pf.features_from_pose(pose, pf.make_feature_spec(), name=str(path))  # as gen_video does
        pf.prepare_pose(pose, name="input pose")  # as the pose-consistency metric does
        assert notes() == [f"Pose {path} holds 2 people; using the first"]
        np.testing.assert_allclose(feats, pf.features_from_pose(reduced, pf.make_feature_spec()), atol=1e-5)
        pf.load_pose(path)  # read again: another pose, noted again
        assert len(notes()) == 2

#----------------------------------------------------------------------------
# Features.

def test_full_and_reduced_same_width_finite(original, reduced):
    spec = pf.make_feature_spec()
    a = pf.features_from_pose(original, spec)
    b = pf.features_from_pose(reduced, spec)
    assert a.shape == (97, spec.num_features) and b.shape == (91, spec.num_features)
    assert spec.num_features == 2 * (8 + 128 + 21 + 21) + 4
    for x in (a, b):
        assert x.dtype == np.float32 and np.isfinite(x).all()
        assert set(np.unique(x[:, -4:])) <= {0.0, 1.0}
        # Shoulders: about +-0.5 shoulder widths from the centre, one width apart.
        sl = spec.column_slices()[pf.BODY]
        body = x[:, sl].reshape(len(x), 8, 2)
        width = np.linalg.norm(body[:, 0] - body[:, 1], axis=-1)
        assert abs(width.mean() - 1.0) < 0.02
        assert np.abs((body[:, 0] + body[:, 1]).mean(0) / 2).max() < 1e-3
        assert np.abs(x).max() < 5


def test_reduced_copy_of_full_pose_gives_same_features(original, tmp_path):
    """Reducing a full pose with pose-format and saving it must not change its features."""
    path = tmp_path / "red.pose"
    path.write_bytes(_bytes(reduce_holistic(original)))
    red = pf.load_pose(path)
    assert red.body.data.shape[2] == 178
    spec = pf.make_feature_spec()
    np.testing.assert_allclose(pf.features_from_pose(red, spec), pf.features_from_pose(original, spec), atol=1e-5)


def test_missing_components_are_zero_with_flag(original):
    spec = pf.make_feature_spec()
    x = pf.features_from_pose(original, spec)
    conf = np.asarray(original.body.confidence)[:, 0]
    lh = original.header.get_point_index(pf.LEFT_HAND, "WRIST")
    found = (conf[:, lh:lh + 21] > 0).any(1)
    flag = x[:, spec.num_coords + 2]
    np.testing.assert_array_equal(flag, found.astype(np.float32))
    cols = spec.column_slices()[pf.LEFT_HAND]
    assert np.all(x[~found][:, cols] == 0)
    assert np.all(np.abs(x[found][:, cols]).sum(1) > 0)


def test_full_mesh_with_irises_accepted(original):
    """478-point faces (refined irises) reduce to the same 128 contour points."""
    names = {c.name: c.points for c in original.header.components}
    names[pf.FACE] = [str(i) for i in range(478)]
    del names[pf.WORLD]
    pose = pf._blank_pose(names, num_frames=2)
    rng = np.random.default_rng(0)
    data = rng.uniform(0, 100, size=pose.body.data.shape).astype(np.float32)
    pose = Pose(pose.header, NumPyPoseBody(fps=25, data=data, confidence=np.ones(data.shape[:3], np.float32)))
    pf.check_pose(pose)
    assert pf.features_from_pose(pose, pf.make_feature_spec()).shape == (2, 360)


def test_spec_round_trip_json():
    spec = pf.make_feature_spec(fps=25)
    d = json.loads(json.dumps(spec.to_dict()))
    assert pf.FeatureSpec.from_dict(d) == spec
    assert d["layout"]["num_features"] == 360 and len(spec.feature_names()) == 360
    assert spec.feature_names()[0] == "POSE_LANDMARKS/LEFT_SHOULDER/x"
    d["version"] = 99
    with pytest.raises(dnnlib.UserError, match="version 99"):
        pf.FeatureSpec.from_dict(d)
    with pytest.raises(dnnlib.UserError, match="Not a pose feature spec"):
        pf.FeatureSpec.from_dict({"version": 1})


def test_spec_subset_of_components(reduced):
    spec = pf.make_feature_spec(components=[pf.BODY, pf.LEFT_HAND, pf.RIGHT_HAND])
    x = pf.features_from_pose(reduced, spec)
    assert x.shape == (91, 2 * 50 + 3)
    with pytest.raises(dnnlib.UserError, match="Unknown pose components"):
        pf.make_feature_spec(components=["HEAD"])


def test_resampling(reduced):
    native = pf.features_from_pose(reduced, pf.make_feature_spec())
    double = pf.features_from_pose(reduced, pf.make_feature_spec(fps=50))
    half = pf.features_from_pose(reduced, pf.make_feature_spec(fps=12.5))
    same = pf.features_from_pose(reduced, pf.make_feature_spec(fps=25))
    assert double.shape[0] == 182 and half.shape[0] == 46
    np.testing.assert_array_equal(same, native)
    np.testing.assert_array_equal(double[::2], native)   # original frames kept
    np.testing.assert_array_equal(half, native[::2])
    # In-between frames: the body (always present) is the average of its neighbours.
    spec = pf.make_feature_spec()
    body = spec.column_slices()[pf.BODY]
    np.testing.assert_allclose(double[1:-1:2, body], (native[:-1, body] + native[1:, body]) / 2, atol=1e-6)


def test_resample_presence_rule():
    spec = pf.make_feature_spec(components=[pf.LEFT_HAND])
    x = np.zeros((3, spec.num_features), np.float32)
    x[0, :42] = 1.0
    x[0, 42] = 1  # present in frame 0 only
    x[2, :42] = 3.0
    x[2, 42] = 1
    y = pf.resample_features(x, spec, fps_in=10, fps_out=40)  # 12 frames at t = 0, 0.25, ...
    assert y.shape == (12, 43)
    np.testing.assert_array_equal(y[:, 42], [1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    assert np.all(y[1, :42] == 1.0) and np.all(y[3, :42] == 0.0)  # nearest frame, no blending with absence

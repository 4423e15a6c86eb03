"""Decoding and per-modality inputs: the right frames, normalised skeletons, face crops."""
from __future__ import annotations

import av
import numpy as np
import pytest

from migue.extractors.skeleton_layouts import get_layout
from migue.pipeline.extraction.inputs import InputConfig, face_crops, pose_clip, rgb_clip
from migue.pipeline.datasets.skeleton import read_openpose_xlsx
from migue.pipeline.datasets.video import VideoError, probe, read_frames


def _all_frames(path):
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


@pytest.fixture(scope="module")
def video(manifest):
    return next(v for v in manifest.videos.values() if v.split == "train")


def test_probe_matches_a_full_decode(video):
    frames = _all_frames(video.video_path)
    info = probe(video.video_path)
    assert (info.frames, info.height, info.width) == (len(frames), *frames.shape[1:3])


def test_seeking_reads_exactly_the_asked_frames(video):
    frames = _all_frames(video.video_path)
    wanted = np.array([200, 3, 150, 150, 251])
    np.testing.assert_array_equal(read_frames(video.video_path, wanted), frames[wanted])


def test_frames_past_the_end_are_an_error_naming_the_file(video):
    with pytest.raises(VideoError, match=video.video_path.name):
        read_frames(video.video_path, np.array([video.frames + 5]))


def test_rgb_clip_crop_and_squash(manifest, video):
    unit = next(u for u in manifest.of_kind("mg") if u.video_id == video.video_id)
    crop = rgb_clip(unit, video, InputConfig(frames=8, size=64, resize="crop"))
    squash = rgb_clip(unit, video, InputConfig(frames=8, size=64, resize="squash"))
    assert crop.shape == squash.shape == (8, 64, 64, 3) and crop.dtype == np.uint8
    assert not np.array_equal(crop, squash)  # 4:3 frames: cropping drops the sides


def test_pose_is_normalised_by_the_frame_size_and_missing_joints_are_zero(manifest, video):
    layout = get_layout("coco")  # has hips, knees, ankles: not visible when seated
    unit = next(u for u in manifest.of_kind("mg") if u.video_id == video.video_id)
    pose = pose_clip(unit, video, InputConfig(frames=16, joints=layout.joints), None)
    assert pose.shape == (16, 17, 3)
    seen = pose[..., 2] > 0
    assert np.abs(pose[..., :2][seen]).max() <= 1.0
    assert np.all(pose[~seen] == 0)
    raw = read_openpose_xlsx(video.skeleton_path)
    nose = raw[unit.start + (unit.end - unit.start + 1) // 32, 0]  # first sampled frame's nose
    np.testing.assert_allclose(pose[0, 0, 0], (nose[0] - video.width / 2) / (video.width / 2), atol=1e-5)


def test_face_crops_are_faces(manifest, video):
    window = next(u for u in manifest.of_kind("window") if u.video_id == video.video_id)
    crops = face_crops(window, video, InputConfig(frames=4), None)
    assert crops.shape == (4, 112, 112, 3)
    frame = read_frames(video.video_path, np.array([window.start]))[0]
    # a face crop is mostly skin, unlike the frame as a whole: the crop is where the face is
    assert np.abs(crops[0].astype(float).mean((0, 1)) - frame.astype(float).mean((0, 1))).max() > 10

"""Turning a unit into the decoded input its extractor eats (frames, skeletons, face crops)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from migue.cache.files import part_of
from migue.pipeline.datasets.manifest import Unit, Video
from migue.pipeline.datasets.openpose import FACE_SLICE, KEYPOINT_INDEX
from migue.pipeline.datasets.skeleton import joint_values, load_skeleton
from migue.pipeline.datasets.video import read_frames

from .decode_worker import Take, cut

HEAD_JOINTS = ("Nose", "REye", "LEye", "REar", "LEar")


@dataclass(frozen=True)
class InputConfig:
    """How units are sampled and decoded (all of it goes into the cache key)."""

    frames: int = 16  # frames sampled per unit (rgb, context, pose) or face crops per window
    size: int = 224  # square side of rgb/context frames
    resize: str = "crop"  # 'crop': short side to `size` then centre crop; 'squash': whole frame
    joints: tuple[str, ...] = ()  # pose: OpenPose names of the layout's joints
    face_size: int = 112
    face_margin: float = 1.4  # face box side = margin x the larger side of the landmarks' box


def sample_indices(start: int, end: int, count: int) -> np.ndarray:
    """`count` frame indices spread uniformly over [start, end] (segment centres; repeats when short)."""
    n = end - start + 1
    return start + ((np.arange(count) + 0.5) * n / count).astype(np.int64)


def clip_takes(unit: Unit, video: Video, cfg: InputConfig) -> tuple[Take, ...]:
    """The frames of an rgb/context unit: 'squash' scales whole frames to size x size; 'crop'
    scales the short side to `size` (the decoder does it) and cuts the centre square."""
    indices = sample_indices(unit.start, unit.end, cfg.frames)
    if cfg.resize == "squash":
        return tuple(Take(int(i), (cfg.size, cfg.size)) for i in indices)
    scale = cfg.size / min(video.width, video.height)
    w, h = max(cfg.size, round(video.width * scale)), max(cfg.size, round(video.height * scale))
    box = ((w - cfg.size) // 2, (h - cfg.size) // 2, cfg.size, cfg.size)
    return tuple(Take(int(i), (w, h), box) for i in indices)


def read_takes(video: Video, takes: tuple[Take, ...]) -> np.ndarray:
    """(T, H, W, 3) uint8: the takes read on their own (seeking to this unit alone)."""
    if video.video_path is None:
        raise FileNotFoundError(f"video {video.video_id}: no video file")
    indices = np.array([t.index for t in takes])
    frames = read_frames(video.video_path, indices, takes[0].scale)
    return np.stack([cut(frame, take) for frame, take in zip(frames, takes)])


def rgb_clip(unit: Unit, video: Video, cfg: InputConfig) -> np.ndarray:
    """(T, size, size, 3) uint8 frames of the unit."""
    return read_takes(video, clip_takes(unit, video, cfg))


@lru_cache(maxsize=8)
def _skeleton(path: str, parsed_dir: str | None, content: str) -> np.ndarray:
    return load_skeleton(Path(path), Path(parsed_dir) if parsed_dir else None)


def skeleton_of(video: Video, parsed_dir: Path | None, content: str = "") -> np.ndarray:
    """The video's (T, 137, 3) keypoints in pixels, kept per worker by path and `content`
    (the skeleton's fingerprint: an edited file is never answered from the worker's copy)."""
    if video.skeleton_path is None:
        raise FileNotFoundError(f"video {video.video_id}: no skeleton file")
    return _skeleton(str(video.skeleton_path), str(parsed_dir) if parsed_dir else None, content)


def pose_clip(unit: Unit, video: Video, cfg: InputConfig, parsed_dir: Path | None) -> np.ndarray:
    """(T, V, 3) float32: OpenPose x, y normalised to [-1, 1] by the video's own frame size and
    confidence, or Kinect world x, y, z (`joint_values`); joints not detected and frames beyond the
    table are all zero."""
    keypoints = skeleton_of(video, parsed_dir, part_of(unit.fingerprint, "skeleton"))
    indices = sample_indices(unit.start, unit.end, cfg.frames)
    out = np.zeros((cfg.frames, len(cfg.joints), 3), dtype=np.float32)
    present = indices < len(keypoints)
    out[present] = joint_values(keypoints[indices[present]], cfg.joints, video.skeleton_path,
                                video.width, video.height)  # (t, V, 3)
    return out


def face_box(points: np.ndarray, width: int, height: int, margin: float) -> tuple[int, int, int] | None:
    """A square (x0, y0, side) around detected face landmarks, or the head joints when none."""
    seen = points[points[:, 2] > 0, :2]
    if len(seen) < 2:
        return None
    (x0, y0), (x1, y1) = seen.min(0), seen.max(0)
    side = max(x1 - x0, y1 - y0, 8.0) * margin
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = min(side, width, height)
    left = int(np.clip(cx - side / 2, 0, width - side))
    top = int(np.clip(cy - side / 2, 0, height - side))
    return left, top, int(side)


def face_takes(unit: Unit, video: Video, cfg: InputConfig, parsed_dir: Path | None) -> tuple[Take, ...]:
    """A face window's frames: full-resolution frames, a square around the face landmarks (head
    joints as fallback, then the last box seen), resized to face_size."""
    keypoints = skeleton_of(video, parsed_dir, part_of(unit.fingerprint, "skeleton"))
    head = [KEYPOINT_INDEX[j] for j in HEAD_JOINTS]
    takes, last = [], None
    for index in sample_indices(unit.start, unit.end, cfg.frames):
        box = None
        if index < len(keypoints):
            box = (face_box(keypoints[index, FACE_SLICE], video.width, video.height, cfg.face_margin)
                   or face_box(keypoints[index, head], video.width, video.height, cfg.face_margin * 1.5))
        box = box or last or _default_box(video.width, video.height)
        last = box
        x, y, side = box
        takes.append(Take(int(index), None, (x, y, side, side), cfg.face_size))
    return tuple(takes)


def face_crops(unit: Unit, video: Video, cfg: InputConfig, parsed_dir: Path | None) -> np.ndarray:
    """(F, 112, 112, 3) uint8 face crops located from the face landmarks (head joints as fallback)."""
    if video.video_path is None:
        raise FileNotFoundError(f"video {video.video_id}: no video file")
    return read_takes(video, face_takes(unit, video, cfg, parsed_dir))


def _default_box(width: int, height: int) -> tuple[int, int, int]:
    """No face found anywhere yet: the upper centre of the frame, where a seated speaker's face is."""
    side = min(width, height) // 2
    return (width - side) // 2, max(0, height // 4 - side // 2), side

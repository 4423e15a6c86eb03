"""A small, deterministic, synthetic iMiGUE sample, in any of the release layouts.

``write_sample(out, layout=...)`` plans the sample once (video ids, subjects, splits,
emotions, clips), renders it once (keypoints, the sheet values an OpenPose run would give,
frames drawn from them), then writes it in one layout. Every layout holds the SAME sample:
the same clips, labels, keypoint values and (where the layout has them) videos and splits.

``miga2025`` (default), for each video id ``"0001"``, ``"0002"``, ... (4-digit, as the
release) in split ``train``, ``validate`` or ``test``, nested as the 2025 zips unpack (the
skeleton download's phase 1 and phase 2, the RGB download in trees of its own)::

    out/imigue_data_phase1/datasets/imigue_skeleton_{train,validate}/<id>/<id>_openpose.xlsx
                                                  T rows x 411 values, no header
    out/imigue_data_phase1/datasets/imigue_skeleton_{train,validate}/<id>/<id>_label.csv
                                                  rows "class,start,end", no header
    out/imigue_data_phase2/imigue_skeleton_test/<id>/...        the same for test
    out/imigue_rgb_phase1/{train_data,validation_data}/<id>/<id>.mp4   H.264, yuv420p
    out/imigue_rgb_phase2/<id>/<id>.mp4
    out/imigue_data_phase1/{train,validation}_label.csv   "video_id,label" (1 win, 0 lose)
    out/imigue_data_phase2/test_label.csv         held-out truth: synthetic only, the real
                                                  test labels are not released
    out/README.txt

``miga2023``: as miga2025 (same nesting) with ``<id>_light_hand.csv`` (T rows x 106: frame index, then the 25
BODY_25 joints, 5 right and 5 left fingertips, each x, y, c) instead of the sheet.
``openpose-json``: as miga2025 with OpenPose's per-frame output
``<skeleton folder>/<id>/openpose_json/<id>_<frame:012d>_keypoints.json`` instead.
``smg``: another dataset, the SMG release's long Kinect skeleton sequences with planted gestures
(17 classes; see ``synth/smg.py``). ``imigue`` (the full release): ``labels.csv`` (video_id, class, start_frame, end_frame,
win_or_lose, subject_id), ``videos/<id>.mp4`` and ``skeletons/<id>_openpose.xlsx``; no split
(the reader makes one by subject). ``stgcn``: the ST-GCN baseline packs
``{train,val,test}_data.npy`` (N, 3, 90, 22, 1) + ``{part}_label.pkl`` (names ``<id>_<k>``,
class indices) and the emotion label files; no videos.

Each video shows one seated person (upper body) drawn from exactly the
keypoints written to its sheet (pixel coordinates of the video frame; the
sheet adds sub-pixel detector noise). Planted, learnable signals:

* micro-gesture: during each labelled clip one hand, the other, or both move to
  a class-specific point on a circle around the upper chest (11 angles x 3 hand
  choices) and hold there or oscillate at a class-specific frequency; outside
  clips the hands rest in front of the body;
* emotion: win -> smiling mouth (face points 48-67 curve up) and a warm, bright
  background; lose -> mouth curving down and a cool, dark background.

The split is cross-subject (subjects with two videos keep both in one split),
each split has win and lose videos, and every one of the 32 MG classes has at
least 2 clips in train and 1 in validate and in test.

Frames are drawn with Pillow (a dependency of matplotlib) and encoded with
PyAV's libx264; sheets are written by a minimal xlsx writer (see ``_write_xlsx``).
"""
from __future__ import annotations

import csv
import json
import math
import pickle
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from openpyxl.utils import get_column_letter
from PIL import Image, ImageDraw

from migue.pipeline.datasets.classes import N_MG_CLASSES, index_to_raw_label
from migue.pipeline.datasets.openpose import (
    FACE_SLICE, KEYPOINT_INDEX, LHAND_SLICE, N_COLUMNS, N_FACE, N_KEYPOINTS, RHAND_SLICE,
)
from migue.pipeline.datasets.skeleton import JOINT_INDEX, JSON_PARTS, LIGHT_HAND_POINTS
from migue.pipeline.datasets.stgcn_pack import PACK_JOINTS

from .spans import CLIP_LEN, MIN_GAP, clip_spans, envelope  # shared with synth/smg.py

SPLITS = ("train", "validate", "test")
LAYOUTS = ("miga2025", "imigue", "miga2023", "openpose-json", "stgcn", "smg")
DEFAULT_FRAMES = 400  # frames per video of the iMiGUE layouts (smg: `smg.DEFAULT_FRAMES`)
DEFAULT_CLIPS = 12  # MG clips per video of the iMiGUE layouts (smg: `smg.GESTURES_PER_SEQUENCE`)
STGCN_PARTS = {"train": "train", "validate": "val", "test": "test"}
STGCN_FRAMES = 90
EMOTION_FILES = {"train": "train_label.csv", "validate": "validation_label.csv",
                 "test": "test_label.csv"}
MIN_CLIPS_PER_CLASS = {"train": 2, "validate": 1, "test": 1}
N_ANGLES = 11  # gesture target angles; 3 hand choices x 11 angles >= 32 classes
FREQS_HZ = (0.0, 1.0, 2.0, 3.0)  # hold, or oscillate at one of three frequencies
DETECTOR_NOISE_PX = 0.25

WIN_BACKGROUND = (235, 200, 95)   # warm, bright
LOSE_BACKGROUND = (85, 105, 150)  # cool, dark
SHIRTS = ((40, 40, 45), (240, 240, 235), (150, 30, 40), (30, 100, 60), (20, 35, 90))
SKINS = ((245, 215, 190), (200, 150, 115), (140, 95, 70), (95, 65, 50))
DARK = (30, 20, 20)
LIPS = (120, 25, 35)

# Body geometry, in units of the person's size (about the frame height).
HEAD_ABOVE_NECK, HEAD_HALF_W, HEAD_HALF_H = 0.19, 0.09, 0.115
SHOULDER_HALF_W, UPPER_ARM, FOREARM, HAND_LEN = 0.2, 0.26, 0.24, 0.12
PALM_RADIUS, FINGER_WIDTH, LIMB_WIDTH = 0.035, 0.02, 0.07
REST_WRIST = (0.1, 0.36)  # (inward from shoulder line, below neck) of the resting wrists
GESTURE_RADIUS, GESTURE_AMPLITUDE = 0.27, 0.05

_K = KEYPOINT_INDEX
Color = tuple[int, int, int]
Point = tuple[float, float]


@dataclass(frozen=True)
class SynthSummary:
    """What ``write_sample`` wrote."""

    out: Path
    seed: int
    video_ids: tuple[str, ...]
    splits: dict[str, tuple[str, ...]]  # split -> its video ids
    subjects: dict[str, str]  # video id -> subject id
    emotions: dict[str, int]  # video id -> 1 win / 0 lose
    n_clips: int
    frames: int
    fps: int
    width: int
    height: int
    layout: str = "miga2025"


@dataclass(frozen=True)
class _Clip:
    cls: int  # class index 0..31
    start: int
    end: int  # inclusive


@dataclass(frozen=True)
class _Look:
    """Per-video appearance and idle motion."""

    center_x: float
    neck_y: float
    unit: float  # person size in pixels
    background: Color
    shirt: Color
    skin: Color
    smile: float  # > 0 corners up (win), < 0 corners down (lose)
    breath_period_s: float
    sway_period_s: float
    phase: float


@dataclass(frozen=True)
class _Video:
    video_id: str
    subject: str
    split: str
    emotion: int
    clips: tuple[_Clip, ...]


def write_sample(out: Path, videos: int = 12, seed: int = 0, *, frames: int | None = None,
                 width: int = 160, height: int = 120, fps: int = 25,
                 clips_per_video: int | None = None, layout: str = "miga2025", rgb: bool = True) -> SynthSummary:
    """Write a deterministic synthetic sample under ``out`` in ``layout`` (see the module docstring).
    ``rgb=False`` leaves out the videos (the skeletons and labels are a separate download from
    the RGB videos in the MiGA releases); everything else is unchanged. Every layout's label rows
    are the videos' gesture segments (MiGA Track 2's long-sequence labels). ``layout='smg'``
    writes the SMG release instead (``synth/smg.py``: ``videos`` sequences of ``frames`` (default
    1200) at 30 fps, ``clips_per_video`` gestures each (default 10); no RGB).

    The defaults give 12 videos split 6/3/3 (train/validate/test) by subject,
    12 clips each (144 clips), 400 frames of 160x120 at 25 fps: a few seconds.
    Raises ValueError when the sizes cannot give every MG class its clips in
    every split, cannot fit the clips into ``frames``, the frame size is odd, or the
    layout is unknown; nothing is written then.
    """
    if layout == "smg":
        return _write_smg(Path(out), videos, seed, frames, clips_per_video)
    if layout not in WRITERS:
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    frames, clips_per_video = frames or DEFAULT_FRAMES, clips_per_video or DEFAULT_CLIPS
    _check_sizes(videos, frames, width, height, clips_per_video)
    out = Path(out)
    rng = np.random.default_rng(seed)
    plan = _plan(videos, clips_per_video, frames, rng)
    out.mkdir(parents=True, exist_ok=True)
    sample = _Sample(out, seed, tuple(plan), frames, width, height, fps, rgb)
    WRITERS[layout](sample)
    _write_readme(sample, layout)
    return SynthSummary(
        out=out, seed=seed,
        video_ids=tuple(v.video_id for v in plan),
        splits={s: tuple(v.video_id for v in plan if v.split == s) for s in SPLITS},
        subjects={v.video_id: v.subject for v in plan},
        emotions={v.video_id: v.emotion for v in plan},
        n_clips=sum(len(v.clips) for v in plan),
        frames=frames, fps=fps, width=width, height=height, layout=layout,
    )


def _write_smg(out: Path, videos: int, seed: int, frames: int | None, gestures: int | None) -> SynthSummary:
    from . import smg

    gestures = gestures or smg.GESTURES_PER_SEQUENCE
    sequences = smg.write_smg(out, videos=videos, seed=seed, frames=frames, gestures=gestures)
    return SynthSummary(
        out=out, seed=seed, video_ids=tuple(s.seq_id for s in sequences),
        splits={split: tuple(s.seq_id for s in sequences if s.split == split) for split in SPLITS},
        subjects={s.seq_id: s.seq_id for s in sequences}, emotions={s.seq_id: -1 for s in sequences},
        n_clips=sum(len(s.gestures) for s in sequences), frames=frames or smg.DEFAULT_FRAMES, fps=smg.FPS,
        width=smg.COLOUR_SIZE[0], height=smg.COLOUR_SIZE[1], layout="smg")


@dataclass(frozen=True)
class _Sample:
    """The planned sample and where it goes; `rendered()` renders each video once, in order."""

    out: Path
    seed: int
    plan: tuple[_Video, ...]
    frames: int
    width: int
    height: int
    fps: int
    rgb: bool = True

    def rendered(self) -> Iterator[_Rendered]:
        for video in self.plan:
            rng = np.random.default_rng([self.seed, int(video.video_id)])
            look = _look(video.emotion, self.width, self.height, rng)
            kp = _keypoints(look, video.clips, self.frames, self.fps)
            values = _sheet_values(kp, self.width, self.height, rng)
            yield _Rendered(video, values, kp, look, self)


@dataclass(frozen=True)
class _Rendered:
    """One rendered video: its (T, 411) sheet values and the frames drawn from its keypoints."""

    video: _Video
    values: np.ndarray  # (T, 411): x, y, c per OpenPose keypoint; 0, 0, 0 where not visible
    kp: np.ndarray  # (T, 137, 2) true keypoints the frames are drawn from
    look: _Look
    sample: _Sample

    def images(self) -> Iterator[np.ndarray]:
        s = self.sample
        return (_draw(self.kp[i], self.look, s.width, s.height) for i in range(s.frames))

    def write_mp4(self, path: Path) -> None:
        s = self.sample
        if not s.rgb:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_mp4(path, self.images(), s.fps, s.width, s.height)

    def label_rows(self) -> list[tuple[int, int, int]]:
        return [(index_to_raw_label(c.cls), c.start, c.end) for c in self.video.clips]


# ---------------------------------------------------------------- planning

def _needed(split: str, clips_per_video: int) -> int:
    """Videos a split needs: enough clips for every class, and a win and a lose video."""
    return max(2, math.ceil(MIN_CLIPS_PER_CLASS[split] * N_MG_CLASSES / clips_per_video))


def _fits(videos: int, clips_per_video: int) -> dict[str, int] | None:
    """Videos per split (about 60/20/20), or None when `videos` cannot give every split its share."""
    n_eval = max(round(0.2 * videos), _needed("validate", clips_per_video))
    sizes = {"train": videos - 2 * n_eval, "validate": n_eval, "test": n_eval}
    return sizes if sizes["train"] >= _needed("train", clips_per_video) else None


def _split_sizes(videos: int, clips_per_video: int) -> dict[str, int]:
    """Videos per split: about 60/20/20, enough clips for every class, >= 2 videos each. The
    refusal names what `migue synth` can be given instead (--videos, --clips-per-video, --frames)."""
    sizes = _fits(videos, clips_per_video)
    if sizes is None:
        minimum = sum(_needed(split, clips_per_video) for split in MIN_CLIPS_PER_CLASS)
        more = next((c for c in range(clips_per_video + 1, 2 * N_MG_CLASSES + 1) if _fits(videos, c)), None)
        instead = (f", or --clips-per-video {more} (with --frames {more * CLIP_LEN[0] + (more + 1) * MIN_GAP} "
                   "or more)" if more else
                   f"; no number of clips per video fits {videos} videos (each split needs 2, a win and a lose one)")
        raise ValueError(
            f"videos={videos} with clips_per_video={clips_per_video} cannot give each of the "
            f"{N_MG_CLASSES} MG classes {MIN_CLIPS_PER_CLASS['train']} train clips and "
            f"{MIN_CLIPS_PER_CLASS['validate']} validate and test clips with a win and a lose "
            f"video in every split: use at least {minimum} videos (--videos {minimum}){instead}")
    return sizes


def _check_sizes(videos: int, frames: int, width: int, height: int, clips_per_video: int) -> None:
    _split_sizes(videos, clips_per_video)
    needed = clips_per_video * CLIP_LEN[0] + (clips_per_video + 1) * MIN_GAP
    if frames < needed:
        raise ValueError(f"frames={frames} cannot hold {clips_per_video} clips of at least "
                         f"{CLIP_LEN[0]} frames with {MIN_GAP}-frame gaps: need {needed}")
    if width % 2 or height % 2 or width < 32 or height < 32:
        raise ValueError(f"frame size {width}x{height} must be even and at least 32x32")


def _plan(videos: int, clips_per_video: int, frames: int,
          rng: np.random.Generator) -> list[_Video]:
    """Assign ids, subjects, splits, emotions and clips; videos sorted by id."""
    ids = [f"{i:04d}" for i in rng.permutation(videos) + 1]  # 4-digit, zero-padded, as the release
    plan: list[_Video] = []
    n_subjects = 0
    for split, n in _split_sizes(videos, clips_per_video).items():
        split_ids, ids = ids[:n], ids[n:]
        # n // 3 subjects with two videos, the rest with one.
        subject_numbers = [n_subjects + i // 2 if i < 2 * (n // 3) else n_subjects + i - n // 3
                           for i in range(n)]
        n_subjects = subject_numbers[-1] + 1
        emotions = rng.permutation([1 - i % 2 for i in range(n)])
        classes = rng.permutation(np.arange(n * clips_per_video) % N_MG_CLASSES)
        for i, video_id in enumerate(split_ids):
            spans = clip_spans(frames, clips_per_video, rng)
            own = classes[i * clips_per_video:(i + 1) * clips_per_video]
            plan.append(_Video(
                video_id=video_id, subject=f"P{subject_numbers[i] + 1:02d}", split=split,
                emotion=int(emotions[i]),
                clips=tuple(_Clip(int(c), s, e) for c, (s, e) in zip(own, spans))))
    return sorted(plan, key=lambda v: int(v.video_id))


def _look(emotion: int, width: int, height: int, rng: np.random.Generator) -> _Look:
    base = np.array(WIN_BACKGROUND if emotion else LOSE_BACKGROUND)
    background = np.clip(base + rng.integers(-15, 16, size=3), 0, 255)
    smile = rng.uniform(0.7, 1.0) * (1 if emotion else -1)
    return _Look(
        center_x=width * (0.5 + rng.uniform(-0.06, 0.06)),
        neck_y=height * (0.42 + rng.uniform(-0.03, 0.03)),
        unit=height * rng.uniform(0.9, 1.05),
        background=tuple(int(c) for c in background),
        shirt=SHIRTS[rng.integers(len(SHIRTS))], skin=SKINS[rng.integers(len(SKINS))],
        smile=float(smile),
        breath_period_s=rng.uniform(3.0, 4.5), sway_period_s=rng.uniform(4.0, 7.0),
        phase=rng.uniform(0, 2 * np.pi),
    )


# ---------------------------------------------------------------- motion

def _gesture(cls: int) -> tuple[tuple[int, ...], float, float]:
    """Class -> (hands: 0 right / 1 left, target angle, oscillation frequency in Hz).

    The angle is measured from the hand's own outward side (0 = sideways, -pi/2 = up,
    pi = across the body), so two-hand gestures are mirror images.
    """
    hands = ((0,), (1,), (0, 1))[cls % 3]
    angle = 2 * np.pi * (cls // 3) / N_ANGLES - np.pi / 2
    return hands, angle, FREQS_HZ[cls % len(FREQS_HZ)]


def _wrists(neck: np.ndarray, clips: tuple[_Clip, ...], fps: int, u: float) -> np.ndarray:
    """(T, 2, 2) wrist positions of the right (image left) and left hand."""
    sides = np.array([-1.0, 1.0])  # outward x direction of the right and left hand
    rest = neck[:, None, :] + np.stack([sides * (SHOULDER_HALF_W - REST_WRIST[0]) * u,
                                        np.full(2, REST_WRIST[1] * u)], -1)
    wrists = rest.copy()
    for clip in clips:
        n = clip.end - clip.start + 1
        span = slice(clip.start, clip.end + 1)
        hands, angle, freq = _gesture(clip.cls)
        swing = GESTURE_AMPLITUDE * u * np.sin(2 * np.pi * freq * np.arange(n) / fps)
        for hand in hands:
            radial = np.array([sides[hand] * np.cos(angle), np.sin(angle)])
            tangent = np.array([-sides[hand] * np.sin(angle), np.cos(angle)])
            target = (neck[span] + [0.0, -0.02 * u] + GESTURE_RADIUS * u * radial
                      + swing[:, None] * tangent)
            reach = envelope(n)[:, None]
            wrists[span, hand] = rest[span, hand] + reach * (target - rest[span, hand])
    return wrists


def _arm(shoulder: np.ndarray, wrist: np.ndarray, side: float,
         u: float) -> tuple[np.ndarray, np.ndarray]:
    """Two-link inverse kinematics: (elbow, reachable wrist), elbow bent outward and down."""
    upper, fore = UPPER_ARM * u, FOREARM * u
    d = wrist - shoulder
    length = np.linalg.norm(d, axis=-1, keepdims=True)
    unit = d / length
    dist = np.clip(length, abs(upper - fore) + 1e-3, upper + fore - 1e-3)
    wrist = shoulder + unit * dist
    along = (upper**2 - fore**2 + dist**2) / (2 * dist)
    across = np.sqrt(upper**2 - along**2)
    normal = np.stack([-unit[:, 1], unit[:, 0]], -1)
    candidates = [shoulder + along * unit + sign * across * normal for sign in (1, -1)]
    score = [side * c[:, 0] + c[:, 1] for c in candidates]
    elbow = np.where((score[0] >= score[1])[:, None], candidates[0], candidates[1])
    return elbow, wrist


def _hand(elbow: np.ndarray, wrist: np.ndarray, side: float, u: float) -> np.ndarray:
    """(T, 21, 2) hand keypoints: 5 fingers of 4 joints fanning from the wrist."""
    forearm = wrist - elbow
    direction = np.arctan2(forearm[:, 1], forearm[:, 0])
    spreads = np.radians([-40, -15, 0, 15, 30]) * side
    lengths = np.array([0.55, 0.9, 1.0, 0.92, 0.75]) * HAND_LEN * u
    joints = np.array([0.45, 0.65, 0.83, 1.0])
    points = [wrist]
    for spread, length in zip(spreads, lengths):
        ray = np.stack([np.cos(direction + spread), np.sin(direction + spread)], -1)
        points += [wrist + ray * length * j for j in joints]
    return np.stack(points, 1)


def _face_template(look: _Look) -> np.ndarray:
    """(70, 2) face points (iBUG-68 + 2 pupils) relative to the head centre."""
    a, b = HEAD_HALF_W * look.unit, HEAD_HALF_H * look.unit
    jaw = [(a * np.cos(t), b * np.sin(t)) for t in np.linspace(np.pi, 0, 17)]
    brows = [(x * a, -0.45 * b - 0.05 * b * np.sin(np.pi * k / 4))
             for lo, hi in ((-0.75, -0.15), (0.15, 0.75))
             for k, x in enumerate(np.linspace(lo, hi, 5))]
    nose = ([(0.0, y * b) for y in np.linspace(-0.3, 0.1, 4)]
            + [(x * a, 0.2 * b) for x in np.linspace(-0.2, 0.2, 5)])
    eye_centers = [(-0.4 * a, -0.25 * b), (0.4 * a, -0.25 * b)]
    eyes = [(cx + 0.18 * a * np.cos(t), cy + 0.08 * b * np.sin(t))
            for cx, cy in eye_centers for t in np.linspace(-np.pi, np.pi, 6, endpoint=False)]
    mouth_y, half_w, lip, bend = 0.5 * b, 0.45 * a, 0.08 * b, 0.3 * b * look.smile

    def lip_point(s: float, side: float) -> tuple[float, float]:
        return s * half_w, mouth_y - bend * s * s + side * lip * (1 - s * s)

    outer = ([lip_point(s, -1) for s in np.linspace(-1, 1, 7)]
             + [lip_point(s, 1) for s in np.linspace(2 / 3, -2 / 3, 5)])
    inner = ([lip_point(s, -0.5) for s in (-0.8, -0.4, 0, 0.4, 0.8)]
             + [lip_point(s, 0.5) for s in (0.4, 0, -0.4)])
    points = np.array(jaw + brows + nose + eyes + outer + inner + eye_centers)
    assert points.shape == (N_FACE, 2)
    return points


def _keypoints(look: _Look, clips: tuple[_Clip, ...], frames: int, fps: int) -> np.ndarray:
    """(T, 137, 2) pixel keypoints; NaN for points a seated view does not show."""
    u = look.unit
    t = np.arange(frames) / fps
    breath = np.sin(2 * np.pi * t / look.breath_period_s + look.phase)
    sway = np.sin(2 * np.pi * t / look.sway_period_s + 2 * look.phase)
    neck = np.stack([look.center_x + 0.01 * u * sway, look.neck_y + 0.008 * u * breath], -1)
    head = neck + np.stack([0.015 * u * sway, np.full(frames, -HEAD_ABOVE_NECK * u)], -1)
    face = head[:, None, :] + _face_template(look)
    wrists = _wrists(neck, clips, fps, u)

    kp = np.full((frames, N_KEYPOINTS, 2), np.nan)
    kp[:, FACE_SLICE] = face
    kp[:, _K["Neck"]] = neck
    kp[:, _K["Nose"]] = face[:, 30]
    kp[:, _K["REye"]], kp[:, _K["LEye"]] = face[:, 68], face[:, 69]
    kp[:, _K["REar"]] = head + [-HEAD_HALF_W * u, -0.05 * HEAD_HALF_H * u]
    kp[:, _K["LEar"]] = head + [HEAD_HALF_W * u, -0.05 * HEAD_HALF_H * u]
    for hand, (side, prefix, hand_slice) in enumerate(((-1.0, "R", RHAND_SLICE),
                                                      (1.0, "L", LHAND_SLICE))):
        shoulder = neck + [side * SHOULDER_HALF_W * u, 0.02 * u]
        shoulder[:, 1] += 0.004 * u * breath
        elbow, wrist = _arm(shoulder, wrists[:, hand], side, u)
        kp[:, _K[f"{prefix}Shoulder"]] = shoulder
        kp[:, _K[f"{prefix}Elbow"]] = elbow
        kp[:, JOINT_INDEX[f"{prefix}Wrist"]] = wrist  # BODY_25's wrist
        kp[:, hand_slice] = _hand(elbow, wrist, side, u)
    return kp


# ---------------------------------------------------------------- drawing

def _draw(kp: np.ndarray, look: _Look, width: int, height: int) -> np.ndarray:
    """One RGB frame (H, W, 3) drawn from one frame's (137, 2) keypoints."""
    image = Image.new("RGB", (width, height), look.background)
    draw = ImageDraw.Draw(image)
    u = look.unit
    p: list[Point] = [tuple(q) for q in kp.tolist()]
    neck, (rx, ry), (lx, ly) = p[_K["Neck"]], p[_K["RShoulder"]], p[_K["LShoulder"]]
    draw.polygon([(rx, ry), (lx, ly), (lx + 0.03 * u, height), (rx - 0.03 * u, height)],
                 fill=look.shirt)
    limb = max(2, round(LIMB_WIDTH * u))
    sleeve = tuple(int(0.8 * c) for c in look.shirt)  # a shade darker: arms show over the torso
    for side in "RL":
        shoulder = p[_K[f"{side}Shoulder"]]
        draw.line([shoulder, p[_K[f"{side}Elbow"]], p[_K[f"{side}Wrist"]]],
                  fill=sleeve, width=limb, joint="curve")
        _disc(draw, shoulder, limb / 2, sleeve)
    face = p[FACE_SLICE]
    (x0, head_y), (x1, _), (_, chin_y) = face[0], face[16], face[8]
    head_x = (x0 + x1) / 2
    draw.line([(neck[0], neck[1] + 0.04 * u), (head_x, head_y)], fill=look.skin,
              width=max(2, round(0.09 * u)))
    draw.ellipse([x0, 2 * head_y - chin_y, x1, chin_y], fill=look.skin)
    for pupil in face[68:70]:
        _disc(draw, pupil, 0.06 * (x1 - x0), DARK)
    draw.line(face[48:60] + face[48:49], fill=LIPS, width=max(1, round(0.02 * u)))
    for hand_slice in (RHAND_SLICE, LHAND_SLICE):
        _draw_hand(draw, p[hand_slice], look.skin, u)
    return np.asarray(image)


def _disc(draw: ImageDraw.ImageDraw, center: Point, radius: float, color: Color) -> None:
    x, y = center
    draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=color)


def _draw_hand(draw: ImageDraw.ImageDraw, hand: list[Point], color: Color, u: float) -> None:
    """Filled palm disc between wrist and middle knuckle, one line per finger."""
    (wx, wy), (mx, my) = hand[0], hand[9]
    _disc(draw, ((wx + mx) / 2, (wy + my) / 2), PALM_RADIUS * u, color)
    width = max(1, round(FINGER_WIDTH * u))
    for finger in range(5):
        draw.line(hand[:1] + hand[1 + 4 * finger:5 + 4 * finger], fill=color, width=width)


# ---------------------------------------------------------------- writing

# Where each split goes in the MiGA layouts, as the 2025 zips unpack: the skeleton download's
# phase 1 (train, validate) and phase 2 (test), and the RGB download in trees of its own.
SKELETON_DIRS = {"train": "imigue_data_phase1/datasets/imigue_skeleton_train",
                 "validate": "imigue_data_phase1/datasets/imigue_skeleton_validate",
                 "test": "imigue_data_phase2/imigue_skeleton_test"}
RGB_DIRS = {"train": "imigue_rgb_phase1/train_data", "validate": "imigue_rgb_phase1/validation_data",
            "test": "imigue_rgb_phase2"}
EMOTION_DIRS = {"train": "imigue_data_phase1", "validate": "imigue_data_phase1", "test": "imigue_data_phase2"}


def _miga_dirs(out: Path, video: _Video) -> tuple[Path, Path]:
    """(skeleton folder (created), rgb folder) of a video in the MiGA layouts."""
    skeleton_dir = out / SKELETON_DIRS[video.split] / video.video_id
    rgb_dir = out / RGB_DIRS[video.split] / video.video_id
    skeleton_dir.mkdir(parents=True, exist_ok=True)
    return skeleton_dir, rgb_dir


def _write_label_csv(path: Path, rows: list[tuple[int, int, int]]) -> None:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)


def _write_miga(sample: _Sample, write_skeleton: Callable[[Path, _Rendered], None]) -> None:
    for r in sample.rendered():
        vid = r.video.video_id
        skeleton_dir, rgb_dir = _miga_dirs(sample.out, r.video)
        write_skeleton(skeleton_dir, r)
        _write_label_csv(skeleton_dir / f"{vid}_label.csv", r.label_rows())
        r.write_mp4(rgb_dir / f"{vid}.mp4")
    _write_emotions(sample.out, list(sample.plan), EMOTION_DIRS)


def _write_miga2025(sample: _Sample) -> None:
    _write_miga(sample, lambda d, r: _write_xlsx(d / f"{r.video.video_id}_openpose.xlsx", r.values))


def _write_miga2023(sample: _Sample) -> None:
    _write_miga(sample, lambda d, r: _write_light_hand(d / f"{r.video.video_id}_light_hand.csv", r.values))


def _write_openpose_json(sample: _Sample) -> None:
    _write_miga(sample, lambda d, r: _write_json_frames(d / "openpose_json", r.video.video_id, r.values))


def _write_imigue(sample: _Sample) -> None:
    """The full release: one labels.csv with subjects, videos/ and skeletons/ (no split)."""
    rows = []
    for r in sample.rendered():
        vid = r.video.video_id
        result = "win" if r.video.emotion else "lose"
        rows += [(vid, raw, start, end, result, r.video.subject) for raw, start, end in r.label_rows()]
        (sample.out / "skeletons").mkdir(parents=True, exist_ok=True)
        _write_xlsx(sample.out / "skeletons" / f"{vid}_openpose.xlsx", r.values)
        r.write_mp4(sample.out / "videos" / f"{vid}.mp4")
    with open(sample.out / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("video_id", "class", "start_frame", "end_frame", "win_or_lose", "subject_id"))
        writer.writerows(rows)


def _write_stgcn(sample: _Sample) -> None:
    """The ST-GCN baseline packs: per part, the 22 light-hand joints of every clip, its last
    90 frames (shorter clips zero-padded at the end), names '<id>_<k>' and class indices."""
    points = [JOINT_INDEX[j] for j in PACK_JOINTS]  # BODY_25's wrists, as the light-hand rows
    parts: dict[str, tuple[list[np.ndarray], list[str], list[int]]] = {
        p: ([], [], []) for p in STGCN_PARTS.values()}
    for r in sample.rendered():
        data, names, labels = parts[STGCN_PARTS[r.video.split]]
        keypoints = r.values.reshape(len(r.values), N_KEYPOINTS, 3)
        for k, clip in enumerate(r.video.clips):
            kept = keypoints[clip.start:clip.end + 1][-STGCN_FRAMES:][:, points]  # (n, 22, 3)
            item = np.zeros((3, STGCN_FRAMES, len(points), 1), dtype=np.float32)
            item[:, :len(kept), :, 0] = kept.transpose(2, 0, 1)
            data.append(item)
            names.append(f"{r.video.video_id}_{k}")
            labels.append(clip.cls)
    for part, (data, names, labels) in parts.items():
        stacked = np.stack(data) if data else np.zeros((0, 3, STGCN_FRAMES, len(points), 1), np.float32)
        np.save(sample.out / f"{part}_data.npy", stacked)
        with open(sample.out / f"{part}_label.pkl", "wb") as f:
            pickle.dump((names, labels), f, protocol=4)
    _write_emotions(sample.out, list(sample.plan))


def _write_light_hand(path: Path, values: np.ndarray) -> None:
    """`<id>_light_hand.csv`: no header; frame index, then the 35 light-hand points x (x, y, c)."""
    points = values.reshape(len(values), N_KEYPOINTS, 3)[:, LIGHT_HAND_POINTS].reshape(len(values), -1)
    with open(path, "w", newline="") as f:
        for i, row in enumerate(points.tolist()):
            f.write(",".join([str(i)] + [repr(v) for v in row]) + "\n")


def _write_json_frames(folder: Path, video_id: str, values: np.ndarray) -> None:
    """OpenPose's `--write_json` output: one `<id>_<frame:012d>_keypoints.json` per frame."""
    folder.mkdir(parents=True, exist_ok=True)
    keypoints = values.reshape(len(values), N_KEYPOINTS, 3)
    for i, frame in enumerate(keypoints):
        people = []
        if (frame[:, 2] > 0).any():
            person: dict[str, object] = {"person_id": [-1]}
            for key, (first, count) in JSON_PARTS.items():
                person[key] = frame[first:first + count].reshape(-1).tolist()
            for key in JSON_PARTS:
                person[key.replace("_2d", "_3d")] = []
            people.append(person)
        (folder / f"{video_id}_{i:012d}_keypoints.json").write_text(
            json.dumps({"version": 1.3, "people": people}, separators=(",", ":")))


WRITERS: dict[str, Callable[[_Sample], None]] = {
    "miga2025": _write_miga2025, "imigue": _write_imigue, "miga2023": _write_miga2023,
    "openpose-json": _write_openpose_json, "stgcn": _write_stgcn,
}


def _sheet_values(kp: np.ndarray, width: int, height: int,
                  rng: np.random.Generator) -> np.ndarray:
    """(T, 411) rows x, y, c per keypoint; x = y = c = 0 where not visible in the frame."""
    xy = kp + rng.normal(0, DETECTOR_NOISE_PX, kp.shape)
    visible = ((xy[..., 0] >= 0) & (xy[..., 0] <= width - 1)
               & (xy[..., 1] >= 0) & (xy[..., 1] <= height - 1))  # NaN compares False
    confidence = rng.uniform(0.6, 0.95, visible.shape)
    values = np.concatenate([np.round(xy, 3), np.round(confidence, 3)[..., None]], -1)
    values[~visible] = 0.0
    return values.reshape(len(kp), N_COLUMNS)


_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_RELS_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOC_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_OOXML = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_XLSX_PARTS = {
    "[Content_Types].xml": (
        f'{_XML}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        f'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        f'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="{_OOXML}.sheet.main+xml"/>'
        f'<Override PartName="/xl/worksheets/sheet1.xml" '
        f'ContentType="{_OOXML}.worksheet+xml"/></Types>'),
    "_rels/.rels": (
        f'{_XML}<Relationships xmlns="{_RELS_NS}"><Relationship Id="rId1" '
        f'Type="{_DOC_NS}/officeDocument" Target="xl/workbook.xml"/></Relationships>'),
    "xl/workbook.xml": (
        f'{_XML}<workbook xmlns="{_MAIN_NS}" xmlns:r="{_DOC_NS}"><sheets>'
        f'<sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'),
    "xl/_rels/workbook.xml.rels": (
        f'{_XML}<Relationships xmlns="{_RELS_NS}"><Relationship Id="rId1" '
        f'Type="{_DOC_NS}/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'),
}


def _write_xlsx(path: Path, values: np.ndarray) -> None:
    """A minimal one-sheet xlsx of numbers, no header.

    Written directly (about 10x faster than openpyxl) with fixed zip timestamps
    and no document properties, so the same values give the same bytes.
    """
    letters = [get_column_letter(i + 1) for i in range(values.shape[1])]
    rows = []
    for r, row in enumerate(values.tolist(), 1):
        cells = "".join([f'<c r="{col}{r}"><v>{v!r}</v></c>' for col, v in zip(letters, row)])
        rows.append(f'<row r="{r}">{cells}</row>')
    sheet = (f'{_XML}<worksheet xmlns="{_MAIN_NS}"><sheetData>{"".join(rows)}'
             '</sheetData></worksheet>')
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in {**_XLSX_PARTS, "xl/worksheets/sheet1.xml": sheet}.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text, compresslevel=1)


def _write_mp4(path: Path, images: Iterable[np.ndarray], fps: int, width: int,
               height: int) -> None:
    """Encode RGB frames with libx264 (yuv420p, one thread: deterministic output)."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {"crf": "18", "preset": "ultrafast"}
        for image in images:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def _write_emotions(out: Path, plan: list[_Video], folders: dict[str, str] | None = None) -> None:
    """The emotion label files, at the root or in each split's `folders`."""
    for split, name in EMOTION_FILES.items():
        folder = out / (folders or {}).get(split, "")
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / name, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(("video_id", "label"))
            writer.writerows((v.video_id, v.emotion) for v in plan if v.split == split)


_MIGA_NESTING = ("Folders as the release's zips unpack: imigue_data_phase1/datasets/imigue_skeleton_"
                 "{train,validate}/<id>/, imigue_data_phase2/imigue_skeleton_test/<id>/, the videos in "
                 "imigue_rgb_phase1/{train_data,validation_data}/<id>/<id>.mp4 and imigue_rgb_phase2/<id>/"
                 "<id>.mp4; ids 4-digit (0054); train_label.csv / validation_label.csv (video_id,label; "
                 "1 win, 0 lose) in imigue_data_phase1/, test_label.csv in imigue_data_phase2/.\n")
LAYOUT_TEXT = {
    "miga2025": "Layout as in the MiGA 2025 release: per video <id>_openpose.xlsx "
                "(no header, 411 columns: x, y, c of 137 OpenPose points, pixels) and <id>_label.csv "
                "(class,start,end; 0-based inclusive). " + _MIGA_NESTING,
    "miga2023": "Layout as in the MiGA 2023/24 release: per video <id>_light_hand.csv "
                "(no header, 106 columns: frame index, then x, y, c of the 25 BODY_25 joints, 5 right "
                "and 5 left fingertips, pixels) and <id>_label.csv (class,start,end; 0-based inclusive). "
                + _MIGA_NESTING,
    "openpose-json": "MiGA folders with OpenPose's own output: per video openpose_json/"
                     "<id>_<frame:012d>_keypoints.json (people[*] with pose, face, hand_left, hand_right "
                     "keypoints) and <id>_label.csv. " + _MIGA_NESTING,
    "imigue": "Layout as in the full iMiGUE release: labels.csv (video_id, class, start_frame, end_frame, "
              "win_or_lose, subject_id), videos/<id>.mp4, skeletons/<id>_openpose.xlsx. No split is "
              "written: readers make a cross-subject one from subject_id.\n",
    "stgcn": "Layout of the MiGA ST-GCN baseline packs: {train,val,test}_data.npy (N, 3, 90, 22, 1: x, y, c "
             "of the 22 light-hand joints over each clip's last 90 frames, zero-padded) and "
             "{part}_label.pkl (names '<id>_<k>', class indices 0..31); train_label.csv / "
             "validation_label.csv. No videos.\n",
}


def _write_readme(sample: _Sample, layout: str) -> None:
    counts = {s: sum(v.split == s for v in sample.plan) for s in SPLITS}
    (sample.out / "README.txt").write_text(
        f"SYNTHETIC iMiGUE-like sample (not real data), written by migue.synth "
        f"with seed={sample.seed}, layout={layout}.\n"
        f"Videos per split: {counts}; the split is cross-subject.\n"
        + LAYOUT_TEXT[layout] +
        "test_label.csv (where written) holds the synthetic test truth; the real test labels are not "
        "released.\n"
        "Planted signals: each MG clip moves the right, left or both hands to a class-specific "
        "point around the upper chest and holds or oscillates at a class-specific frequency "
        "(abstract motions, not the real gestures); win videos smile and have a warm bright "
        "background, lose videos frown and have a cool dark one.\n")

"""A small, deterministic, synthetic SMG release: long Kinect skeleton sequences with planted gestures.

``write_smg(out, videos=10)`` writes, for each sequence ``Sample0001``, ``Sample0002``, ... (the
release's names)::

    out/<id>/<id>_skeleton.csv     T rows x 275 values: 25 Kinect joints x (world x, y, z in metres,
                                   orientation quaternion, depth pixel x, y, colour pixel x, y)
    out/<id>/<id>_finelabels.csv   rows class,start,end: class 1..17, frames 1-based, inclusive
    out/<id>/<id>_data.csv         numFrames,fps,maxDepth
    out/README.txt

The reader splits them by the starter kit's rule (sorted ids, the first 7/8 train, the rest test:
`migue.pipeline.datasets.smg.kit_split`); each class is spread over both splits.

One seated person, seen by a Kinect 2.2 m away, breathes and sways; between gestures the hands rest
on the thighs and drift slowly (background motion). Each gesture (17 classes) moves the right,
left or both hands (class % 3) to one of six body targets (class // 3: top of the head, face, neck,
chest, belly, the other arm), holds there or oscillates sideways at 2 Hz (odd classes), and
returns: distinct skeleton motion per class, so a pose detector can find them. Gestures last
30-80 frames (SMG's mean is 51) with at least 20 background frames around each.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from migue.pipeline.datasets.kinect import COLOUR_SIZE, KINECT_INDEX, N_KINECT, VALUES_PER_JOINT
from migue.pipeline.datasets.smg import DATA_SUFFIX, LABELS_SUFFIX, N_CLASSES, kit_split

from .spans import clip_spans, envelope

FPS = 30
DEFAULT_FRAMES = 1200  # 40 s at 30 fps
GESTURES_PER_SEQUENCE = 10
GESTURE_LEN = (30, 80)  # inclusive range of gesture lengths, in frames
MIN_GAP = 20  # background frames before, between and after gestures
MAX_DEPTH_MM = 4500
JITTER_M = 0.003  # Kinect's joint jitter
REST_DRIFT_M = 0.03  # amplitude of the hands' slow drift at rest
OSCILLATION_HZ, OSCILLATION_M = 2.0, 0.05
DEPTH_CAMERA = (512, 424, 365.0)  # width, height, focal length in pixels
COLOUR_FOCAL = 1060.0

_J = KINECT_INDEX
# The seated person's joints, metres (x to the person's left, y up, z away from the camera).
BASE = {
    "SpineBase": (0.0, -0.35, 2.2), "SpineMid": (0.0, -0.05, 2.2), "SpineShoulder": (0.0, 0.2, 2.2),
    "Neck": (0.0, 0.27, 2.2), "Head": (0.0, 0.42, 2.18),
    "ShoulderLeft": (0.18, 0.17, 2.2), "ShoulderRight": (-0.18, 0.17, 2.2),
    "HipLeft": (0.09, -0.38, 2.2), "HipRight": (-0.09, -0.38, 2.2),
    "KneeLeft": (0.12, -0.4, 1.75), "KneeRight": (-0.12, -0.4, 1.75),
    "AnkleLeft": (0.12, -0.82, 1.75), "AnkleRight": (-0.12, -0.82, 1.75),
    "FootLeft": (0.12, -0.86, 1.65), "FootRight": (-0.12, -0.86, 1.65),
}
REST_WRIST = {"Left": (0.15, -0.33, 1.95), "Right": (-0.15, -0.33, 1.95)}
SIDES = {"Left": 1.0, "Right": -1.0}
HANDS = (("Right",), ("Left",), ("Right", "Left"))  # class % 3


@dataclass(frozen=True)
class Gesture:
    """A planted gesture: class index 0..16, first and last frame (0-based, inclusive)."""

    cls: int
    start: int
    end: int


@dataclass(frozen=True)
class Sequence:
    seq_id: str
    split: str
    gestures: tuple[Gesture, ...]


def check_sizes(videos: int, frames: int, gestures: int) -> None:
    """ValueError (naming the `migue synth` options) when the sizes cannot make the release."""
    if videos < 2:
        raise ValueError(f"videos={videos}: an SMG release needs at least 2 sequences (one train, one test; "
                         "use --videos 2 or more)")
    needed = gestures * GESTURE_LEN[0] + (gestures + 1) * MIN_GAP
    if frames < needed:
        raise ValueError(f"frames={frames} cannot hold {gestures} gestures of at least {GESTURE_LEN[0]} frames "
                         f"with {MIN_GAP}-frame gaps: use --frames {needed} or more")


def plan(videos: int, frames: int, gestures: int, rng: np.random.Generator) -> list[Sequence]:
    """Ids, splits (the kit's rule) and gestures; within a split classes go round-robin, shuffled."""
    ids = [f"Sample{i:04d}" for i in range(1, videos + 1)]
    splits = kit_split(ids)
    classes = {}
    for split in ("train", "test"):
        members = [s for s in ids if splits[s] == split]
        order = rng.permutation(np.arange(len(members) * gestures) % N_CLASSES)
        classes.update({s: order[i * gestures:(i + 1) * gestures] for i, s in enumerate(members)})
    out = []
    for sid in ids:
        spans = clip_spans(frames, gestures, rng, GESTURE_LEN, MIN_GAP)
        out.append(Sequence(sid, splits[sid], tuple(Gesture(int(c), s, e) for c, (s, e) in zip(classes[sid], spans))))
    return out


# ---------------------------------------------------------------- motion

def _target(cls: int, hand: str, body: dict[str, np.ndarray]) -> np.ndarray:
    """(T, 3) where a gesture of class `cls` takes the wrist of `hand`."""
    side = SIDES[hand]
    offsets = {0: ("Head", (0.04 * side, 0.1, -0.05)), 1: ("Head", (0.05 * side, -0.05, -0.12)),
               2: ("Neck", (0.04 * side, -0.02, -0.12)), 3: ("SpineShoulder", (0.03 * side, -0.1, -0.18)),
               4: ("SpineMid", (0.03 * side, -0.08, -0.2)), 5: ("SpineMid", (-0.2 * side, 0.12, -0.15))}
    joint, offset = offsets[cls // 3]
    return body[joint] + np.array(offset)


def _drift(frames: int, rng: np.random.Generator) -> np.ndarray:
    """(T, 3) slow, smooth wandering of a resting hand (a sum of low-frequency sines)."""
    t = np.arange(frames) / FPS
    out = np.zeros((frames, 3))
    for axis in range(3):
        for _ in range(3):
            out[:, axis] += np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 2 * np.pi))
    return REST_DRIFT_M / 3 * out


def world(sequence: Sequence, frames: int, rng: np.random.Generator) -> np.ndarray:
    """(T, 25, 3) joint positions in metres, Kinect jitter included."""
    t = np.arange(frames) / FPS
    breath = 0.005 * np.sin(2 * np.pi * t / rng.uniform(3.0, 4.5))
    sway = 0.01 * np.sin(2 * np.pi * t / rng.uniform(4.0, 7.0) + rng.uniform(0, 2 * np.pi))
    move = np.stack([sway, breath, np.zeros(frames)], -1)  # (T, 3)
    body = {name: np.array(p) + move * (0.3 if name in ("SpineBase", "HipLeft", "HipRight") else 1.0)
            for name, p in BASE.items()}
    for name in ("KneeLeft", "KneeRight", "AnkleLeft", "AnkleRight", "FootLeft", "FootRight"):
        body[name] = np.broadcast_to(np.array(BASE[name]), (frames, 3)).copy()
    wrists = {hand: np.array(REST_WRIST[hand]) + move + _drift(frames, rng) for hand in SIDES}
    for g in sequence.gestures:
        n, span = g.end - g.start + 1, slice(g.start, g.end + 1)
        reach = envelope(n)[:, None]
        swing = (OSCILLATION_M * np.sin(2 * np.pi * OSCILLATION_HZ * np.arange(n) / FPS) if g.cls % 2
                 else np.zeros(n))
        for hand in HANDS[g.cls % 3]:
            goal = _target(g.cls, hand, {k: v[span] for k, v in body.items()})
            goal[:, 0] += swing
            wrists[hand][span] += reach * (goal - wrists[hand][span])
    out = np.zeros((frames, N_KINECT, 3))
    for name, p in body.items():
        out[:, _J[name]] = p
    for hand, side in SIDES.items():
        shoulder, wrist = body[f"Shoulder{hand}"], wrists[hand]
        elbow = (shoulder + wrist) / 2 + [0.07 * side, -0.1, 0.06]
        along = (wrist - elbow) / np.linalg.norm(wrist - elbow, axis=-1, keepdims=True)
        out[:, _J[f"Elbow{hand}"]] = elbow
        out[:, _J[f"Wrist{hand}"]] = wrist
        out[:, _J[f"Hand{hand}"]] = wrist + 0.07 * along
        out[:, _J[f"HandTip{hand}"]] = wrist + 0.15 * along
        out[:, _J[f"Thumb{hand}"]] = wrist + 0.05 * along + [-0.04 * side, 0.0, 0.0]
    return out + rng.normal(0, JITTER_M, out.shape)


def skeleton_rows(positions: np.ndarray) -> np.ndarray:
    """(T, 275) rows: per joint world x, y, z, orientation (identity quaternion x, y, z, w), depth
    pixel, colour pixel (a pinhole projection of the world position)."""
    frames = len(positions)
    x, y, z = positions[..., 0], positions[..., 1], positions[..., 2]
    width, height, focal = DEPTH_CAMERA
    values = np.zeros((frames, N_KINECT, VALUES_PER_JOINT))
    values[..., 0:3] = positions
    values[..., 6] = 1.0
    values[..., 7], values[..., 8] = width / 2 + focal * x / z, height / 2 - focal * y / z
    values[..., 9] = COLOUR_SIZE[0] / 2 + COLOUR_FOCAL * x / z
    values[..., 10] = COLOUR_SIZE[1] / 2 - COLOUR_FOCAL * y / z
    return values.reshape(frames, -1)


def write_sequence(out: Path, sequence: Sequence, frames: int, rng: np.random.Generator) -> None:
    """The three files of one sequence."""
    folder = out / sequence.seq_id
    folder.mkdir(parents=True, exist_ok=True)
    rows = skeleton_rows(world(sequence, frames, rng))
    np.savetxt(folder / f"{sequence.seq_id}_skeleton.csv", rows, fmt="%.4f", delimiter=",")
    labels = "".join(f"{g.cls + 1},{g.start + 1},{g.end + 1}\n" for g in sequence.gestures)  # 1-based
    (folder / f"{sequence.seq_id}{LABELS_SUFFIX}").write_text(labels)
    (folder / f"{sequence.seq_id}{DATA_SUFFIX}").write_text(f"{frames},{FPS},{MAX_DEPTH_MM}\n")


def write_smg(out: Path, videos: int = 10, seed: int = 0, frames: int | None = None,
              gestures: int = GESTURES_PER_SEQUENCE) -> list[Sequence]:
    """Write the release under `out` (see the module docstring); the planned sequences. The same
    seed gives the same bytes. ValueError (nothing written) when the sizes cannot make it."""
    frames = frames or DEFAULT_FRAMES
    check_sizes(videos, frames, gestures)
    rng = np.random.default_rng(seed)
    sequences = plan(videos, frames, gestures, rng)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for k, sequence in enumerate(sequences):
        write_sequence(out, sequence, frames, np.random.default_rng([seed, k + 1]))
    n_train = sum(s.split == "train" for s in sequences)
    (out / "README.txt").write_text(
        f"SYNTHETIC SMG-like release (not real data), written by migue.synth with seed={seed}.\n"
        f"{videos} sequences of {frames} frames at {FPS} fps, {gestures} gestures each; split by the starter "
        f"kit's rule (sorted ids, first {n_train} train, the rest test).\n"
        "Per sequence <id>/: <id>_skeleton.csv (no header; 25 Kinect joints x 11 values: world x, y, z in "
        "metres, orientation quaternion, depth pixel x, y, colour pixel x, y), <id>_finelabels.csv "
        "(class,start,end; classes 1..17, frames 1-based inclusive), <id>_data.csv (numFrames,fps,maxDepth).\n"
        "Planted signals: each gesture moves the right, left or both hands (class % 3) to one of six body "
        "targets (class // 3) and holds or oscillates (odd classes); between gestures the hands rest on the "
        "thighs and drift slowly (abstract motions, not the real gestures). No RGB.\n")
    return sequences

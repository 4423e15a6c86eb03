"""The OpenPose 1.3 keypoint set of the iMiGUE releases: 137 points, 411 values.

Order, as in OpenPose's JSON and the MiGA 2025 sheets: BODY_25 (0-24), face
(25-94, the 68 iBUG landmarks plus two pupils), left hand (95-115), right hand
(116-136). Each point is (x, y, confidence) in pixels; confidence 0 = missing.
"""
from __future__ import annotations

BODY_25 = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
    "MidHip", "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye",
    "REar", "LEar", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
)
HAND_21 = (
    "Wrist",
    "Thumb1", "Thumb2", "Thumb3", "ThumbTip",
    "Index1", "Index2", "Index3", "IndexTip",
    "Middle1", "Middle2", "Middle3", "MiddleTip",
    "Ring1", "Ring2", "Ring3", "RingTip",
    "Pinky1", "Pinky2", "Pinky3", "PinkyTip",
)
N_FACE = 70
FINGERTIPS = ("ThumbTip", "IndexTip", "MiddleTip", "RingTip", "PinkyTip")

BODY_SLICE = slice(0, 25)
FACE_SLICE = slice(25, 25 + N_FACE)
LHAND_SLICE = slice(95, 116)
RHAND_SLICE = slice(116, 137)
N_KEYPOINTS = 137
N_COLUMNS = 3 * N_KEYPOINTS  # 411

# Face landmark groups (iBUG-68 indices within the 70 face points).
FACE_JAW = range(0, 17)
FACE_MOUTH = range(48, 68)
FACE_PUPILS = (68, 69)

# Hand points are `L`/`R` + the HAND_21 name, except each hand's root, `LHandWrist`/`RHandWrist`:
# `LWrist`/`RWrist` are BODY_25's wrists, the ones every release (light-hand CSV included) has.
KEYPOINT_NAMES: tuple[str, ...] = (
    BODY_25
    + tuple(f"Face{i}" for i in range(N_FACE))
    + tuple(f"L{'Hand' if name == 'Wrist' else ''}{name}" for name in HAND_21)
    + tuple(f"R{'Hand' if name == 'Wrist' else ''}{name}" for name in HAND_21)
)
KEYPOINT_INDEX = {name: i for i, name in enumerate(KEYPOINT_NAMES)}
assert len(KEYPOINT_NAMES) == N_KEYPOINTS == len(KEYPOINT_INDEX)

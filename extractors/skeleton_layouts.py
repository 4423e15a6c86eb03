"""Skeleton joint layouts for 2s-AGCN, defined once by joint name.

Joint names use the vocabulary of the skeletons a layout reads: OpenPose's (BODY_25 names,
hand points as `R`/`L` + HAND_21 names such as `RIndexTip`) for the iMiGUE releases, the
Kinect SDK's (`SpineBase`, `HandTipLeft`, ...) for `kinect25` (SMG). Each layout gives the graph
(inward edges child -> parent, centre) and the bone pairs of the bone stream
(bone[v] = joint[v] - joint[parent(v)], the centre's bone is zero).
`coco`, `openpose18` and `kinect25` reproduce mmaction2's built-in graphs (`coco`, `openpose`,
`nturgb+d`) and JointToBone pairs exactly, so the released 2s-AGCN checkpoints see what they were
trained on (NTU RGB+D's skeletons are Kinect v2's 25 joints, in the same order as SMG's).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class JointLayout:
    """A named joint set with its graph and bone pairs (indices into `joints`)."""

    name: str
    joints: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]  # (child, parent): inward graph edges
    center: str
    bones: tuple[tuple[str, str], ...]  # (joint, reference): bone = joint - reference
    scored: bool = True  # the third input channel is a confidence (2D: x, y, c); False: a coordinate (x, y, z)

    @property
    def num_node(self) -> int:
        return len(self.joints)

    def index(self, joint: str) -> int:
        return self.joints.index(joint)

    def inward(self) -> list[tuple[int, int]]:
        return [(self.index(c), self.index(p)) for c, p in self.edges]

    def bone_pairs(self) -> list[tuple[int, int]]:
        return [(self.index(j), self.index(r)) for j, r in self.bones]

    def graph_cfg(self) -> dict[str, Any]:
        """mmaction2 `Graph` config (custom-layout dict form)."""
        return {"layout": {"num_node": self.num_node, "inward": self.inward(),
                           "center": self.index(self.center)}, "mode": "spatial"}


def _tree(name: str, joints: tuple[str, ...], parent: dict[str, str], center: str) -> JointLayout:
    """A layout whose bones follow its graph edges (child minus parent)."""
    edges = tuple((c, parent[c]) for c in joints if c in parent)
    bones = tuple((j, parent.get(j, j)) for j in joints)
    return JointLayout(name, joints, edges, center, bones)


_COCO = ("Nose", "LEye", "REye", "LEar", "REar", "LShoulder", "RShoulder", "LElbow", "RElbow",
         "LWrist", "RWrist", "LHip", "RHip", "LKnee", "RKnee", "LAnkle", "RAnkle")
_OPENPOSE18 = ("Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
               "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar")


def _by_index(joints: tuple[str, ...], pairs: list[tuple[int, int]]) -> tuple[tuple[str, str], ...]:
    return tuple((joints[a], joints[b]) for a, b in pairs)


COCO17 = JointLayout(
    "coco", _COCO,
    # mmaction2 Graph(layout='coco').inward
    edges=_by_index(_COCO, [(15, 13), (13, 11), (16, 14), (14, 12), (11, 5), (12, 6), (9, 7), (7, 5),
                            (10, 8), (8, 6), (5, 0), (6, 0), (1, 0), (3, 1), (2, 0), (4, 2)]),
    center="Nose",
    # mmaction2 JointToBone(dataset='coco').pairs
    bones=_by_index(_COCO, [(0, 0), (1, 0), (2, 0), (3, 1), (4, 2), (5, 0), (6, 0), (7, 5), (8, 6),
                            (9, 7), (10, 8), (11, 0), (12, 0), (13, 11), (14, 12), (15, 13), (16, 14)]),
)

OPENPOSE18 = JointLayout(
    "openpose18", _OPENPOSE18,
    edges=_by_index(_OPENPOSE18, [(4, 3), (3, 2), (7, 6), (6, 5), (13, 12), (12, 11), (10, 9), (9, 8),
                                  (11, 5), (8, 2), (5, 1), (2, 1), (0, 1), (15, 0), (14, 0), (17, 15),
                                  (16, 14)]),
    center="Neck",
    bones=_by_index(_OPENPOSE18, [(0, 0), (1, 0), (2, 1), (3, 2), (4, 3), (5, 1), (6, 5), (7, 6),
                                  (8, 2), (9, 8), (10, 9), (11, 5), (12, 11), (13, 12), (14, 0),
                                  (15, 0), (16, 14), (17, 15)]),
)

_TIPS = ("ThumbTip", "IndexTip", "MiddleTip", "RingTip", "PinkyTip")
# The 22 joints of the MiGA light-hand ST-GCN baseline: upper body, eyes, ears, 10 fingertips.
IMIGUE22 = _tree(
    "imigue22",
    ("Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
     "REye", "LEye", "REar", "LEar") + tuple("R" + t for t in _TIPS) + tuple("L" + t for t in _TIPS),
    {"Nose": "Neck", "RShoulder": "Neck", "RElbow": "RShoulder", "RWrist": "RElbow",
     "LShoulder": "Neck", "LElbow": "LShoulder", "LWrist": "LElbow", "REye": "Nose", "LEye": "Nose",
     "REar": "REye", "LEar": "LEye",
     **{"R" + t: "RWrist" for t in _TIPS}, **{"L" + t: "LWrist" for t in _TIPS}},
    center="Neck",
)

# OpenPose BODY_25 in its own order, its tree as OpenPose draws it (POSE_BODY_25_PAIRS), rooted
# at the neck: head through the nose, arms through the shoulders, legs through the mid hip,
# big toe and heel from the ankle, small toe from the big toe.
BODY25 = _tree(
    "body25",
    ("Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
     "MidHip", "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye",
     "REar", "LEar", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel"),
    {"Nose": "Neck", "RShoulder": "Neck", "RElbow": "RShoulder", "RWrist": "RElbow",
     "LShoulder": "Neck", "LElbow": "LShoulder", "LWrist": "LElbow", "MidHip": "Neck",
     "RHip": "MidHip", "RKnee": "RHip", "RAnkle": "RKnee", "LHip": "MidHip", "LKnee": "LHip",
     "LAnkle": "LKnee", "REye": "Nose", "LEye": "Nose", "REar": "REye", "LEar": "LEye",
     "LBigToe": "LAnkle", "LSmallToe": "LBigToe", "LHeel": "LAnkle",
     "RBigToe": "RAnkle", "RSmallToe": "RBigToe", "RHeel": "RAnkle"},
    center="Neck",
)

# Kinect v2's 25 joints in the SDK's JointType order (SMG's `_skeleton.csv`, NTU RGB+D), with
# mmaction2's `nturgb+d` graph (inward edges, centre SpineShoulder) and JointToBone pairs (which, unlike
# the graph, take a hand tip's bone from the thumb: both as mmaction2 has them).
_KINECT = ("SpineBase", "SpineMid", "Neck", "Head", "ShoulderLeft", "ElbowLeft", "WristLeft", "HandLeft",
           "ShoulderRight", "ElbowRight", "WristRight", "HandRight", "HipLeft", "KneeLeft", "AnkleLeft",
           "FootLeft", "HipRight", "KneeRight", "AnkleRight", "FootRight", "SpineShoulder", "HandTipLeft",
           "ThumbLeft", "HandTipRight", "ThumbRight")
KINECT25 = JointLayout(
    "kinect25", _KINECT,
    edges=_by_index(_KINECT, [(0, 1), (1, 20), (2, 20), (3, 2), (4, 20), (5, 4), (6, 5), (7, 6), (8, 20),
                              (9, 8), (10, 9), (11, 10), (12, 0), (13, 12), (14, 13), (15, 14), (16, 0),
                              (17, 16), (18, 17), (19, 18), (21, 7), (22, 7), (23, 11), (24, 11)]),
    center="SpineShoulder",
    bones=_by_index(_KINECT, [(0, 1), (1, 20), (2, 20), (3, 2), (4, 20), (5, 4), (6, 5), (7, 6), (8, 20),
                              (9, 8), (10, 9), (11, 10), (12, 0), (13, 12), (14, 13), (15, 14), (16, 0),
                              (17, 16), (18, 17), (19, 18), (21, 22), (20, 20), (22, 7), (23, 24), (24, 11)]),
    scored=False,  # world x, y, z: a bone differences all three (mmaction2's JointToBone for nturgb+d)
)

LAYOUTS: dict[str, JointLayout] = {layout.name: layout
                                   for layout in (IMIGUE22, COCO17, OPENPOSE18, BODY25, KINECT25)}


def get_layout(name: str) -> JointLayout:
    """A layout by name, with a clear error listing the known ones."""
    if name not in LAYOUTS:
        raise KeyError(f"unknown joint layout {name!r}; known: {sorted(LAYOUTS)}")
    return LAYOUTS[name]

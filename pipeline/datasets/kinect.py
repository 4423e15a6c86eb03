"""Kinect v2 skeletons as the SMG release writes them: `<id>_skeleton.csv`, no header, one row per
frame, 25 joints x 11 values (world position x, y, z in metres; orientation quaternion, 4 values;
depth-image pixel x, y; colour-image pixel x, y), joints in the Kinect SDK's JointType order.

`skeleton.read_kinect_csv` reads it to (T, 25, 3) float32 world positions (x right, y up, z away from the camera, metres): the
pose input of the `kinect25` joint layout. A joint Kinect did not track is all zero (z = 0 is never
a tracked joint: it would sit on the camera), as a missing OpenPose point is.
"""
from __future__ import annotations

# The Kinect SDK's JointType order (SMG's own reader calls index 2, the SDK's Neck, ShoulderCenter).
KINECT_JOINTS: tuple[str, ...] = (
    "SpineBase", "SpineMid", "Neck", "Head", "ShoulderLeft", "ElbowLeft", "WristLeft", "HandLeft",
    "ShoulderRight", "ElbowRight", "WristRight", "HandRight", "HipLeft", "KneeLeft", "AnkleLeft", "FootLeft",
    "HipRight", "KneeRight", "AnkleRight", "FootRight", "SpineShoulder", "HandTipLeft", "ThumbLeft",
    "HandTipRight", "ThumbRight")
KINECT_INDEX: dict[str, int] = {name: i for i, name in enumerate(KINECT_JOINTS)}
N_KINECT = len(KINECT_JOINTS)  # 25
VALUES_PER_JOINT = 11  # 3 world position, 4 orientation, 2 depth pixel, 2 colour pixel
KINECT_COLUMNS = N_KINECT * VALUES_PER_JOINT  # 275
WORLD = slice(0, 3)  # the values of a joint the pose input uses
COLOUR_SIZE = (1920, 1080)  # Kinect v2 colour camera: the frame the colour pixels are of
SKELETON_SUFFIX = "_skeleton.csv"

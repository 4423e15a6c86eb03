"""The released checkpoints migue knows: where they are published, how to recognise them.

Hashes, honestly: OpenMMLab's publish_model.py appends the first 8 hex digits of the file's
SHA-256 to each released file name (`..._20221222-4c0ed77e.pth`), and torchvision's weight
URLs carry the first 8 hex digits of the SHA-256 that torch.hub checks (`mvit_v2_s-ae3be167.pth`).
So for those a SHA-256 *prefix* is known; no full digest is published, and none was measured
here (the files could not be downloaded on this machine): `sha256` stays None until someone
records one. The SwinFace release (a Google Drive folder) publishes no hash at all.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FORMATS = {
    "mmaction2-recognizer": "mmaction2 recognizer checkpoint: {'state_dict': {'backbone.*', 'cls_head.*'}, "
                            "'meta': ...}; the head is dropped",
    "torchvision-mvit": "torchvision video.mvit_v2_s state_dict (conv_proj, pos_encoding, blocks.*, norm, "
                        "head); converted to mmaction2 MViT names, the head dropped",
    "swinface-official": "official SwinFace checkpoint: {'state_dict_backbone' (Microsoft Swin naming), "
                         "'state_dict_fam', 'state_dict_tss', 'state_dict_om'}; backbone + feature head used",
    "migue-swinface": "state_dict of migue's SwinFace extractor (backbone.* in mmpose naming + feature.*)",
}
# which extractor reads which formats: `register_extractor(..., formats=...)` in each model's file


@dataclass(frozen=True)
class KnownWeights:
    """One published checkpoint."""

    key: str
    extractor: str          # registry name
    use: str                # how migue uses it
    format: str             # a FORMATS key
    file_name: str          # as published
    url: str
    sha256: str | None = None         # full digest, when known
    sha256_prefix: str | None = None  # the prefix the publisher put in the file name
    note: str = ""
    direct: bool = True     # `url` is the file itself (False: a shared folder, fetched by hand)

    def hash_status(self, digest: str) -> str:
        """'verified', 'prefix matches', 'MISMATCH' or 'unknown' for a local file's SHA-256."""
        if self.sha256:
            return "verified" if digest == self.sha256 else "MISMATCH"
        if self.sha256_prefix:
            return "prefix matches" if digest.startswith(self.sha256_prefix) else "MISMATCH"
        return "unknown"


_MMACTION = "https://download.openmmlab.com/mmaction/v1.0"
CATALOGUE: tuple[KnownWeights, ...] = (
    KnownWeights(
        "mvit-s-k400-mmaction2", "mvit", "rgb, context (--arch small --frames 16 --size 224)",
        "mmaction2-recognizer", "mvit-small-p244_16x4x1_kinetics400-rgb_20221021-9ebaaeed.pth",
        f"{_MMACTION}/recognition/mvit/converted/mvit-small-p244_16x4x1_kinetics400-rgb_20221021-9ebaaeed.pth",
        sha256_prefix="9ebaaeed",
        note="MViTv2-S Kinetics-400, converted by mmaction2 from SlowFast (81.1 top-1); "
             "config mvit-small-p244_16x4x1_kinetics400-rgb.py: MViT(arch='small'), mean 114.75, std 57.375"),
    KnownWeights(
        "mvit-s-k400-mmaction2-trained", "mvit", "rgb, context (--arch small --frames 16 --size 224)",
        "mmaction2-recognizer",
        "mvit-small-p244_32xb16-16x4x1-200e_kinetics400-rgb_20230201-23284ff3.pth",
        f"{_MMACTION}/recognition/mvit/mvit-small-p244_32xb16-16x4x1-200e_kinetics400-rgb/"
        "mvit-small-p244_32xb16-16x4x1-200e_kinetics400-rgb_20230201-23284ff3.pth",
        sha256_prefix="23284ff3", note="MViTv2-S Kinetics-400 trained by mmaction2 (80.6 top-1)"),
    KnownWeights(
        "mvit-v2-s-k400-torchvision", "mvit", "rgb, context (--arch small --frames 16 --size 224)",
        "torchvision-mvit", "mvit_v2_s-ae3be167.pth", "https://download.pytorch.org/models/mvit_v2_s-ae3be167.pth",
        sha256_prefix="ae3be167",
        note="torchvision MViT_V2_S_Weights.KINETICS400_V1 (80.757 top-1); mean 0.45, std 0.225 on [0, 1] "
             "= migue's 114.75 / 57.375 on [0, 255]"),
    KnownWeights(
        "2s-agcn-joint-ntu60-2d", "agcn", "pose, joint stream (--joints coco; give it first)",
        "mmaction2-recognizer", "2s-agcn_8xb16-joint-u100-80e_ntu60-xsub-keypoint-2d_20221222-4c0ed77e.pth",
        f"{_MMACTION}/skeleton/2s-agcn/2s-agcn_8xb16-joint-u100-80e_ntu60-xsub-keypoint-2d/"
        "2s-agcn_8xb16-joint-u100-80e_ntu60-xsub-keypoint-2d_20221222-4c0ed77e.pth",
        sha256_prefix="4c0ed77e",
        note="AAGCN(graph_cfg=dict(layout='coco', mode='spatial'), gcn_attention=False), 2 persons, "
             "PreNormalize2D inputs (x, y in [-1, 1], score); 88.60 top-1 NTU-60 xsub"),
    KnownWeights(
        "2s-agcn-bone-ntu60-2d", "agcn", "pose, bone stream (--joints coco; give it second)",
        "mmaction2-recognizer", "2s-agcn_8xb16-bone-u100-80e_ntu60-xsub-keypoint-2d_20221222-293878b5.pth",
        f"{_MMACTION}/skeleton/2s-agcn/2s-agcn_8xb16-bone-u100-80e_ntu60-xsub-keypoint-2d/"
        "2s-agcn_8xb16-bone-u100-80e_ntu60-xsub-keypoint-2d_20221222-293878b5.pth",
        sha256_prefix="293878b5", note="as the joint stream, on coco bones (JointToBone); 91.59 top-1"),
    KnownWeights(
        "swinface", "swinface", "face", "swinface-official", "checkpoint_step_79999_gpu_0.pt",
        "https://drive.google.com/drive/folders/1NjVN3Kp_Tmwt17hWCIWgHpuWzkHYaman",
        note="SwinFace (lxq1000/SwinFace README, Google Drive folder); no hash published", direct=False),
)


def detect_format(ckpt: Mapping[str, Any]) -> str:
    """Which released format a loaded checkpoint is in (a FORMATS key), or 'unknown'."""
    from .convert_swinface import is_swinface_official
    from .convert_torchvision_mvit import is_torchvision_mvit

    if is_swinface_official(ckpt):
        return "swinface-official"
    state = ckpt.get("state_dict", ckpt)
    if not isinstance(state, Mapping):
        return "unknown"
    if is_torchvision_mvit(state):
        return "torchvision-mvit"
    keys = [k for k in state if isinstance(k, str)]
    if any(k.startswith("backbone.") for k in keys):
        if any(k.startswith("feature.") for k in keys):
            return "migue-swinface"
        return "mmaction2-recognizer"
    return "unknown"


def describe_formats(extractor: str) -> str:
    """The formats `extractor` reads, each with what it is (as its registration declares them)."""
    from .registry import extractor_formats

    return "; ".join(f"{name} ({FORMATS.get(name, 'its own format')})" for name in extractor_formats(extractor))


def unsupported(path: str, extractor: str, fmt: str, ckpt: Mapping[str, Any]) -> str:
    state = ckpt.get("state_dict", ckpt)
    first = list(state)[:5] if isinstance(state, Mapping) else []
    return (f"{path} is in format {fmt!r} (first keys: {first}), which the {extractor} extractor does not "
            f"read; it reads: {describe_formats(extractor)}")


def by_file_name(name: str) -> KnownWeights | None:
    return next((w for w in CATALOGUE if w.file_name == name), None)


def by_key(key: str) -> KnownWeights | None:
    """The catalogue entry named `key` (read at call time, so a test can swap the catalogue)."""
    return next((w for w in CATALOGUE if w.key == key), None)


def by_digest(digest: str) -> KnownWeights | None:
    """The catalogue entry whose published SHA-256 (or its prefix) `digest` matches."""
    return next((w for w in CATALOGUE if (w.sha256 and digest == w.sha256)
                 or (not w.sha256 and w.sha256_prefix and digest.startswith(w.sha256_prefix))), None)


def published_digest(w: KnownWeights) -> str:
    """What the publisher states about a file's SHA-256, in words."""
    if w.sha256:
        return w.sha256
    if w.sha256_prefix:
        return f"{w.sha256_prefix}... (prefix from the published file name; full digest unknown)"
    return "unknown (none published)"

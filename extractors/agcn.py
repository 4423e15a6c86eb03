"""2s-AGCN (mmaction2 `AAGCN`): joint and bone streams on OpenPose skeletons, the `pose` modality."""
from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

from . import compat
from .base import Extractor, ExtractorSpec, StreamSpec
from .checkpoints import CheckpointError, LoadReport, load_strict, mmaction_backbone_state, read_checkpoint
from .registry import register_extractor
from .skeleton_layouts import LAYOUTS, get_layout

log = logging.getLogger("migue.checkpoints")

EMBED_DIM = 256  # AAGCN last-stage channels
TEMPORAL_STRIDE = 4  # two temporal down-sampling stages


def agcn_spec(layout: str = "imigue22", frames: int = 64, num_person: int = 2,
              attention: bool = False) -> ExtractorSpec:
    """The spec of `build_agcn(layout, frames, num_person, attention)`."""
    joints = get_layout(layout)
    steps = -(-frames // TEMPORAL_STRIDE)
    grid = (steps, joints.num_node)
    return ExtractorSpec(
        name="agcn",
        input_layout="B T V 3 float32 (x, y normalised to [-1, 1], confidence)",
        streams={
            "joint": StreamSpec(steps * joints.num_node, EMBED_DIM, grid, "joint stream, (t, v)"),
            "bone": StreamSpec(steps * joints.num_node, EMBED_DIM, grid, "bone stream, (t, v)"),
        },
        config={"layout": layout, "frames": frames, "num_person": num_person,
                "attention": attention, "joints": list(joints.joints)},
    )


class AGCNExtractor(Extractor):
    """(B, T, V, 3) skeletons (x, y in [-1, 1] by the frame size, confidence; missing = 0)
    -> joint and bone tokens, each (B, T/4 * V, 256)."""

    def __init__(self, layout: str = "imigue22", frames: int = 64, num_person: int = 2,
                 attention: bool = False) -> None:
        super().__init__()
        compat.apply()
        from mmaction.models import AAGCN

        self.layout = get_layout(layout)
        # num_person=2 with data_bn_type='MVC' matches the released NTU-60 checkpoints; the
        # second person is zero-padded, as NTU's single-person samples were in training.
        kwargs = dict(graph_cfg=self.layout.graph_cfg(), num_person=num_person,
                      data_bn_type="MVC", gcn_attention=attention)
        self.joint = AAGCN(**kwargs)
        self.bone = AAGCN(**kwargs)
        self.num_person = num_person
        pairs = torch.tensor(self.layout.bone_pairs())
        self.register_buffer("bone_joint", pairs[:, 0], persistent=False)
        self.register_buffer("bone_ref", pairs[:, 1], persistent=False)
        self.spec = agcn_spec(layout, frames, num_person, attention)

    def bones(self, joints: torch.Tensor) -> torch.Tensor:
        """(B, T, V, 3) -> bone vectors, confidence = mean of both ends (mmaction2 JointToBone); a
        layout of 3D coordinates (kinect25: x, y, z) differences all three channels, as mmaction2 does."""
        bone = torch.zeros_like(joints)
        a, b = joints[:, :, self.bone_joint], joints[:, :, self.bone_ref]
        if not self.layout.scored:
            bone[:, :, self.bone_joint] = a - b
            return bone
        bone[:, :, self.bone_joint, :2] = a[..., :2] - b[..., :2]
        bone[:, :, self.bone_joint, 2] = (a[..., 2] + b[..., 2]) / 2
        return bone

    def _stream(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        B, T, V, C = x.shape
        persons = x.new_zeros(B, model.num_person, T, V, C)  # (B, M, T, V, C)
        persons[:, 0] = x
        features = model(persons)                            # (B, M, 256, T', V)
        own = features[:, 0]                                 # (B, 256, T', V): the subject
        return own.flatten(2).transpose(1, 2)                # (B, T'V, 256)

    def freeze(self) -> "AGCNExtractor":
        """Frozen, and the zero-padded persons dropped: AAGCN runs persons as separate batch
        items after its input BatchNorm, so in eval mode person 0's features do not depend on
        them. Person 0's slice of the (M, V, C) BatchNorm becomes a (V, C) one: half the work."""
        super().freeze()
        for model in (self.joint, self.bone):
            if model.data_bn_type == "MVC" and model.num_person > 1:
                model.data_bn = _first_person_bn(model.data_bn, model.num_person)
                model.data_bn_type, model.num_person = "VC", 1
        return self

    def forward(self, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        x = inputs.float()
        return {"joint": self._stream(self.joint, x), "bone": self._stream(self.bone, self.bones(x))}

    def load_checkpoint(self, path: str | Sequence[str], trust: bool = False,
                        strict: bool = True) -> list[LoadReport]:
        """Two mmaction2 2s-AGCN recognizer checkpoints: joint then bone."""
        from .weights import detect_format, unsupported

        paths = [path] if isinstance(path, str) else list(path)
        if len(paths) != 2:
            raise CheckpointError("pose needs two checkpoints, joint then bone "
                                  f"(2s-agcn_8xb16-joint-... and -bone-...); got {paths}")
        reports = []
        for model, p in zip((self.joint, self.bone), paths):
            ckpt = read_checkpoint(p, trust)
            fmt = detect_format(ckpt)
            if fmt != "mmaction2-recognizer":
                raise CheckpointError(unsupported(str(p), "agcn", fmt, ckpt))
            state = mmaction_backbone_state(ckpt, p)
            self._check_layout(state, model, p, strict)
            reports.append(load_strict(model, state, p, strict=strict, report=LoadReport(str(p), fmt)))
        return reports

    def _check_layout(self, state: dict[str, torch.Tensor], model: nn.Module, path: str, strict: bool) -> None:
        """A checkpoint trained on another joint layout is refused with the reason, not as a
        list of mis-shaped keys: its input BatchNorm has persons x joints x 3 channels, and
        its fixed graph `A` must be this layout's graph."""
        problem = None
        bn, ours = state.get("data_bn.weight"), model.data_bn.weight
        if bn is not None and bn.numel() != ours.numel():
            channels = bn.numel()
            joints = channels / (model.num_person * model.in_channels)
            fits = [name for name, lay in LAYOUTS.items() if lay.num_node == joints]
            problem = (f"its data_bn has {channels} channels = {model.num_person} persons x "
                       f"{joints:g} joints x {model.in_channels}, but layout {self.layout.name!r} has "
                       f"{self.layout.num_node} joints ({ours.numel()} channels)")
            if fits:
                problem += f"; choose joint layout {' or '.join(repr(f) for f in fits)}"
            problem += (" (mmaction2's NTU-60 2D 2s-AGCN checkpoints use layout 'coco', 17 joints: "
                        "migue extract --joints coco)")
        elif "A" in state and state["A"].shape == model.A.shape and not torch.allclose(state["A"], model.A):
            problem = (f"its graph A differs from layout {self.layout.name!r}'s: it was trained on "
                       "another joint order or skeleton (mmaction2's NTU-60 2D checkpoints: --joints coco)")
        if problem is None:
            return
        if strict:
            raise CheckpointError(f"{path} does not fit the {self.layout.name!r} layout: {problem}")
        log.warning("NON-STRICT load: %s does not fit the %r layout: %s", path, self.layout.name, problem)


def _first_person_bn(bn: nn.BatchNorm1d, num_person: int) -> nn.BatchNorm1d:
    """The (V*C)-channel BatchNorm equal to person 0's part of an (M*V*C)-channel one."""
    per_person = bn.num_features // num_person
    out = nn.BatchNorm1d(per_person, eps=bn.eps, momentum=bn.momentum)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(out, name).copy_(getattr(bn, name)[:per_person])
    return out.eval().requires_grad_(False)


@register_extractor("agcn", "2s-AGCN (mmaction2 AAGCN): joint + bone streams, 256-d per (t, joint)", spec=agcn_spec,
                    formats=("mmaction2-recognizer",))
def build_agcn(layout: str = "imigue22", frames: int = 64, num_person: int = 2,
               attention: bool = False) -> AGCNExtractor:
    return AGCNExtractor(layout=layout, frames=frames, num_person=num_person, attention=attention)

"""Every registered extractor honours its spec; checkpoints load strictly; layouts match mmaction2."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from migue.extractors.checkpoints import CheckpointError
from migue.extractors.registry import create_extractor, list_extractors
from migue.extractors.skeleton_layouts import LAYOUTS, get_layout

TINY = {  # small configs of every registered extractor, and an input batch maker
    "mvit": ({"arch": "tiny", "frames": 8, "size": 64},
             lambda: torch.randint(0, 256, (2, 8, 64, 64, 3), dtype=torch.uint8)),
    "agcn": ({"layout": "imigue22", "frames": 16}, lambda: torch.rand(2, 16, 22, 3) * 2 - 1),
    "swinface": ({"frames": 2}, lambda: torch.randint(0, 256, (2, 2, 112, 112, 3), dtype=torch.uint8)),
}


def test_every_registered_extractor_is_covered():
    assert set(list_extractors()) == set(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
def test_output_matches_spec_and_is_frozen(name):
    config, make = TINY[name]
    torch.manual_seed(0)
    model = create_extractor(name, **config)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    out = model(make())
    assert set(out) == set(model.spec.streams)
    for stream, spec in model.spec.streams.items():
        assert out[stream].shape == (2, spec.tokens, spec.dim), stream
        assert int(np.prod(spec.grid)) == spec.tokens
        assert torch.isfinite(out[stream]).all()


@pytest.mark.parametrize("name", sorted(TINY))
def test_same_seed_same_weights(name):
    config, make = TINY[name]
    x = make()
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        outs.append(create_extractor(name, **config)(x))
    for stream in outs[0]:
        torch.testing.assert_close(outs[0][stream], outs[1][stream], rtol=0, atol=0)


def test_agcn_dropping_padded_person_is_exact():
    torch.manual_seed(0)
    model = create_extractor("agcn", layout="coco", frames=16)
    x = torch.rand(3, 16, 17, 3)
    fast = model(x)
    torch.manual_seed(0)
    from migue.extractors.agcn import AGCNExtractor
    reference = AGCNExtractor(layout="coco", frames=16).eval()  # M=2, zero-padded person
    # give data_bn non-trivial statistics so the check means something
    for m_fast, m_ref in ((model.joint, reference.joint), (model.bone, reference.bone)):
        with torch.no_grad():
            m_ref.data_bn.running_mean.uniform_(-1, 1)
            m_ref.data_bn.running_var.uniform_(0.5, 2)
            n = m_fast.data_bn.num_features
            m_fast.data_bn.running_mean.copy_(m_ref.data_bn.running_mean[:n])
            m_fast.data_bn.running_var.copy_(m_ref.data_bn.running_var[:n])
    fast = model(x)
    with torch.no_grad():
        slow = reference(x)
    for stream in ("joint", "bone"):
        torch.testing.assert_close(fast[stream], slow[stream], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layout", ["coco", "openpose18"])
def test_builtin_layouts_equal_mmaction2_graphs_and_bones(layout):
    from mmaction.datasets.transforms import JointToBone
    from mmaction.models.utils import Graph

    ours = get_layout(layout)
    builtin = {"coco": "coco", "openpose18": "openpose"}[layout]
    np.testing.assert_array_equal(Graph(**ours.graph_cfg()).A, Graph(layout=builtin, mode="spatial").A)
    keypoint = np.random.default_rng(0).random((1, 5, ours.num_node, 3)).astype(np.float32)
    expected = JointToBone(dataset=builtin)(dict(keypoint=keypoint))["keypoint"]
    from migue.extractors.agcn import AGCNExtractor
    got = AGCNExtractor(layout=layout, frames=4).bones(torch.from_numpy(keypoint))
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-6)


def test_every_layout_is_a_tree_with_bones_for_every_joint():
    for layout in LAYOUTS.values():
        assert len(set(layout.joints)) == layout.num_node
        assert len(layout.bone_pairs()) == layout.num_node
        assert layout.center in layout.joints
        assert len(layout.inward()) == layout.num_node - 1


def _mmaction_checkpoint(model, path, extra=None):
    state = {f"backbone.{k}": v for k, v in model.state_dict().items()}
    state["cls_head.fc_cls.weight"] = torch.zeros(400, 768)
    state.update(extra or {})
    torch.save({"meta": {"epoch": 1}, "state_dict": state}, path)


def test_mmaction_checkpoint_loads_and_gives_its_features(tmp_path):
    config, make = TINY["mvit"]
    torch.manual_seed(1)
    source = create_extractor("mvit", **config)
    _mmaction_checkpoint(source.backbone, tmp_path / "mvit.pth")
    torch.manual_seed(2)  # different random init: only the checkpoint can make them equal
    loaded = create_extractor("mvit", checkpoint=str(tmp_path / "mvit.pth"), **config)
    x = make()
    torch.testing.assert_close(loaded(x)["cls"], source(x)["cls"])


def test_checkpoint_with_missing_or_extra_keys_is_refused_by_name(tmp_path):
    config, _ = TINY["mvit"]
    source = create_extractor("mvit", **config)
    state = copy.deepcopy(source.backbone.state_dict())
    dropped = next(iter(state))
    _mmaction_checkpoint(source.backbone, tmp_path / "extra.pth", {"backbone.surprise.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="surprise.weight"):
        create_extractor("mvit", checkpoint=str(tmp_path / "extra.pth"), **config)
    state.pop(dropped)
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in state.items()}}, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match=dropped.replace(".", r"\.")):
        create_extractor("mvit", checkpoint=str(tmp_path / "missing.pth"), **config)


def test_pose_checkpoints_joint_then_bone(tmp_path):
    config, make = TINY["agcn"]
    from migue.extractors.agcn import AGCNExtractor
    torch.manual_seed(3)
    source = AGCNExtractor(**config).eval()  # unfrozen: the released M=2 format
    _mmaction_checkpoint(source.joint, tmp_path / "joint.pth")
    _mmaction_checkpoint(source.bone, tmp_path / "bone.pth")
    loaded = create_extractor("agcn", checkpoint=[str(tmp_path / "joint.pth"), str(tmp_path / "bone.pth")],
                              **config)
    x = make()
    with torch.no_grad():
        expected = source(x)
    torch.testing.assert_close(loaded(x)["bone"], expected["bone"], rtol=1e-5, atol=1e-5)
    with pytest.raises(CheckpointError, match="two checkpoints"):
        create_extractor("agcn", checkpoint=str(tmp_path / "joint.pth"), **config)


def test_checkpoint_with_pickled_objects_needs_trust(tmp_path):
    config, _ = TINY["mvit"]
    source = create_extractor("mvit", **config)
    _mmaction_checkpoint(source.backbone, tmp_path / "np.pth")
    ckpt = torch.load(tmp_path / "np.pth")
    ckpt["meta"]["mean"] = np.zeros(3)  # numpy objects, as in mmengine Runner checkpoints
    torch.save(ckpt, tmp_path / "np.pth")
    with pytest.raises(CheckpointError, match="--trust-checkpoint"):
        create_extractor("mvit", checkpoint=str(tmp_path / "np.pth"), **config)
    create_extractor("mvit", checkpoint=str(tmp_path / "np.pth"), trust_checkpoint=True, **config)

"""Fusion heads: registry, output shapes and gradients for every registered head."""
from __future__ import annotations

import pytest
import torch

from migue.fusion import build_data, build_head, config_for, head_inputs, heads_help, list_heads, resolve_config
from migue.fusion.synthetic import write_emotion, write_mg

TINY = {"width": 32, "depth": 1, "num_heads": 2, "dropout": 0.0}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    return {"mg": write_mg(root, per_class=(1, 1, 1)), "emotion": write_emotion(root, videos=(4, 2, 2))}


def batch_for(task, name, config, stores):
    """A real training batch of the synthetic store, as the head would read it, and its shapes."""
    data = build_data(task, stores[task], head_inputs(name, task, config), splits=("train",))
    return data.splits["train"].batch(range(4)), data.shapes


HEADS = [(task, name) for task in ("mg", "emotion") for name in list_heads(task)]


@pytest.mark.parametrize(("task", "name"), HEADS)
def test_head_shapes_and_gradients(task, name, stores):
    torch.manual_seed(0)
    config = config_for(task, name, TINY)
    batch, shapes = batch_for(task, name, config, stores)
    head = build_head(name, task, shapes, config)
    logits = head(batch)
    assert logits.shape == ((4, 32) if task == "mg" else (4,))
    assert torch.isfinite(logits).all()
    logits.float().pow(2).mean().backward()
    starved = [n for n, p in head.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not starved, f"{name}: no gradient reaches {starved}"


@pytest.mark.parametrize("overrides", [
    {"cmtf_mode": "cross"},
    {"cmtf_mode": "cross", "rgb_pool": "none", "pose_pool": "none", "depth": 2},
    {"rgb_pool": "cls", "pose_pool": "mean", "pose_streams": ["joint"]},
])
def test_cmtf_variants(overrides, stores):
    config = {**TINY, **overrides}
    batch, shapes = batch_for("mg", "cmtf", config, stores)
    head = build_head("cmtf", "mg", shapes, config)
    head(batch).sum().backward()
    assert all(p.grad is not None for p in head.parameters())
    expected_rgb = {"none": 8, "time": 2, "cls": 1}[config.get("rgb_pool", "time")]
    assert batch["rgb"].shape[1] == expected_rgb


def test_cmtf_modality_dropout_only_in_training(stores):
    config = {**TINY, "modality_dropout": 1.0}
    batch, shapes = batch_for("mg", "cmtf", config, stores)
    head = build_head("cmtf", "mg", shapes, config)
    head.eval()
    assert torch.equal(head(batch), head(batch))
    reference = head(batch)
    head.train()
    assert not torch.allclose(head(batch), reference)  # every sample lost rgb or pose


@pytest.mark.parametrize("pool", ["cls", "none", "mean"])
def test_interfusion_context_views(pool, stores):
    config = {**TINY, "context_pool": pool}
    batch, shapes = batch_for("emotion", "interfusion", config, stores)
    assert batch["context"].shape[2] == {"cls": 1, "none": 8, "mean": 1}[pool]
    assert batch["mask"].dtype == torch.bool
    head = build_head("interfusion", "emotion", shapes, config)
    assert head(batch).shape == (4,)


def test_interfusion_ignores_padded_windows(stores):
    batch, shapes = batch_for("emotion", "interfusion", TINY, stores)
    head = build_head("interfusion", "emotion", shapes, TINY).eval()
    noisy = dict(batch, face=batch["face"].clone(), context=batch["context"].clone())
    noisy["face"][~batch["mask"]] = 1e3
    noisy["context"][~batch["mask"]] = -1e3
    assert not batch["mask"].all()
    assert torch.allclose(head(batch), head(noisy))


def test_registry_lists_every_head_with_a_description():
    names = list_heads()
    for expected in ["cmtf", "interfusion", "late", "late-pose", "concat", "probe-linear-rgb", "probe-mlp-rgb",
                     "probe-linear-pose-joint", "probe-mlp-pose-bone", "probe-linear-face", "probe-mlp-context"]:
        assert expected in names and names[expected]
    assert set(list_heads("mg")) & set(list_heads("emotion")) == {"late", "concat"}
    text = heads_help()
    assert all(name in text for name in names) and len(text.splitlines()) == len(names)


def test_registry_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"'cmtf' does not fit task 'emotion'.*interfusion"):
        build_head("cmtf", "emotion", {})
    with pytest.raises(KeyError, match="unknown head 'nope'"):
        build_head("nope", "mg", {})
    with pytest.raises(KeyError, match="unknown config keys"):
        resolve_config("mg", {"widht": 3})
    with pytest.raises(ValueError, match="cmtf_mode"):
        resolve_config("mg", {"cmtf_mode": "sideways"})
    with pytest.raises(ValueError, match="not a mg metric"):
        resolve_config("mg", {"monitor": "roc_auc"})

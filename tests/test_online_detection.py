"""The online detection head: shapes, padding, registration, and that it learns planted gestures on
synthetic window tokens (a few seconds on CPU) well enough to beat F1 0.5 on held-out sequences;
the probe baseline runs on the same data."""
from __future__ import annotations

import pytest
import torch

from migue.fusion.detection import Detections, TemporalDetector
from migue.fusion.online import DecodeSettings, Segment, StepGrid, decode_steps, score_segments
from migue.fusion.online.baseline import WindowProbe
from migue.fusion.online.synthetic import fit, predict, synthetic_sequences

GRID = StepGrid(stride=8, window=32)


@pytest.mark.parametrize("mixer", ["conv", "transformer"])
def test_shapes_and_padding(mixer):
    torch.manual_seed(0)
    head = TemporalDetector({"joint": (1, 16), "bone": (1, 8)}, 5, ("joint", "bone"), width=32, depth=2,
                            mixer=mixer).eval()
    batch = {"joint": torch.randn(2, 7, 16), "bone": torch.randn(2, 7, 8),
             "mask": torch.tensor([[True] * 7, [True] * 4 + [False] * 3])}
    out = head(batch)
    assert isinstance(out, Detections)
    assert out.logits.shape == (2, 7, 6)      # (B, T, C + 1): background + 5 classes
    assert out.offsets.shape == (2, 7, 2)     # (B, T, 2)
    assert (out.offsets >= 0).all()
    # the padded sequence's real steps equal those of the same sequence alone, unpadded
    alone = head({"joint": batch["joint"][1:, :4], "bone": batch["bone"][1:, :4]})
    assert torch.allclose(out.logits[1, :4], alone.logits[0], atol=1e-5)
    assert torch.allclose(out.offsets[1, :4], alone.offsets[0], atol=1e-5)


def test_windows_grouped_with_their_tokens_are_averaged():
    head = TemporalDetector({"joint": (3, 16)}, 2, ("joint",), width=16, depth=1).eval()
    grouped = torch.randn(2, 5, 3, 16)                                   # (B, T, L, D)
    assert torch.allclose(head({"joint": grouped}).logits, head({"joint": grouped.mean(2)}).logits)


def test_loss_is_finite_and_reaches_every_parameter():
    head = TemporalDetector({"rgb": (1, 12)}, 3, ("rgb",), width=16, depth=2)
    batch = {"rgb": torch.randn(2, 6, 12), "mask": torch.ones(2, 6, dtype=torch.bool)}
    labels = torch.tensor([[0, 1, 1, 0, 3, 3], [0, 0, 2, 2, 2, 0]])
    offsets = torch.rand(2, 6, 2) * (labels > 0).unsqueeze(-1)
    loss = head.loss(head(batch), labels, offsets, batch["mask"])
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in head.parameters())


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="mixer 'lstm'"):
        TemporalDetector({"rgb": (1, 12)}, 3, ("rgb",), mixer="lstm")
    with pytest.raises(ValueError, match="reads streams \\['joint'\\]"):
        TemporalDetector({"rgb": (1, 12)}, 3, ("joint",))
    with pytest.raises(ValueError, match="kernel 4"):
        TemporalDetector({"rgb": (1, 12)}, 3, ("rgb",), kernel=4)


def test_registered_as_the_online_head():
    from migue.fusion.registry import get_head

    spec = get_head("detect", "online")
    assert spec.settings["mixer"] == "conv" and spec.settings["streams"] == ["joint", "bone"]
    head = spec.factory({"joint": (1, 16), "bone": (1, 16)}, 4, **spec.settings)
    assert head({"joint": torch.randn(1, 5, 16), "bone": torch.randn(1, 5, 16)}).logits.shape == (1, 5, 5)


def truths(sequences) -> list[Segment]:
    return [Segment(s.video_id, c, a, b) for s in sequences for c, a, b in s.gestures]


def test_learns_planted_gestures_on_synthetic_sequences():
    torch.set_num_threads(1)
    train = synthetic_sequences(32, num_classes=4, dim=24, grid=GRID, seed=0, prefix="train")
    held_out = synthetic_sequences(12, num_classes=4, dim=24, grid=GRID, seed=1, prefix="test")
    torch.manual_seed(0)
    head = TemporalDetector({"tokens": (1, 24)}, 4, ("tokens",), width=48, depth=3)
    seconds = fit(head, train, GRID, epochs=20, lr=5e-3)
    found = [seg for s in held_out for seg in decode_steps(*predict(head, s), GRID, DecodeSettings(), s.video_id)]
    result = score_segments(found, truths(held_out))
    assert result["truths"] > 30
    assert result["f1"] > 0.5, f"F1 {result['f1']:.3f} after {seconds:.1f} s of training"


def test_probe_baseline_finds_gestures():
    train = synthetic_sequences(32, num_classes=4, dim=24, grid=GRID, seed=0, prefix="train")
    held_out = synthetic_sequences(12, num_classes=4, dim=24, grid=GRID, seed=1, prefix="test")
    probe = WindowProbe(4).fit([s.tokens for s in train], [s.gestures for s in train], GRID)
    assert probe.probs(held_out[0].tokens).shape == (len(held_out[0].tokens), 5)
    found = [seg for s in held_out for seg in probe.segments(s.tokens, GRID, DecodeSettings(), s.video_id)]
    assert score_segments(found, truths(held_out))["f1"] > 0.3

"""The CUDA branch's arithmetic, on CPU: auto batch size from measured memory, bf16 autocast."""
from __future__ import annotations

import numpy as np
import torch

from migue.pipeline.extraction import backbone, batching, options


def test_auto_batch_on_cuda_fits_the_free_memory_share_measured_with_one_unit(monkeypatch):
    calls = []
    allocated = {"now": int(2e9)}
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: allocated["now"])
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: int(2e9 + 0.7e9))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (int(60e9), int(141e9)))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    monkeypatch.setattr(batching, "forward", lambda model, batch, device, precision: calls.append(
        (tuple(batch.shape), device.type, precision)))
    sample = np.zeros((16, 8, 8, 3), np.uint8)
    batch = batching.resolve_batch_size(options.ExtractOptions(modality="rgb"), torch.nn.Identity(),
                                  torch.device("cuda"), "bf16", sample)
    # by hand: one unit peaks at 0.7 GB; 0.6 x 60 GB / 0.7 GB = 51 fit -> 32, the power of two below
    assert batch == 32
    assert calls == [((1, 16, 8, 8, 3), "cuda", "bf16")]  # measured with one unit, at the run's precision


def test_auto_batch_on_cuda_without_a_sample_is_a_small_fixed_batch():
    assert batching.resolve_batch_size(options.ExtractOptions(modality="rgb"), torch.nn.Identity(),
                                 torch.device("cuda"), "bf16", None) == 4


def test_auto_precision_is_bf16_on_cuda_and_fp32_on_cpu():
    assert backbone.resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert backbone.resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert backbone.resolve_precision("fp32", torch.device("cuda")) == "fp32"


def test_bf16_autocasts_on_the_models_device(monkeypatch):
    made = []
    monkeypatch.setattr(torch, "autocast", lambda device_type, dtype=None: made.append((device_type, dtype)))
    backbone.autocast_for(torch.device("cuda"), "bf16")
    assert made == [("cuda", torch.bfloat16)]
    monkeypatch.undo()
    with backbone.autocast_for(torch.device("cpu"), "bf16"):
        assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.bfloat16
    with backbone.autocast_for(torch.device("cpu"), "fp32"):
        assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.float32

"""Shared fixtures: one small synthetic sample per test session."""
from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tests on one torch thread (small heads: threads only add noise)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory):
    """A generated MiGA 2025 sample: 12 videos, 260 frames each, 160x120."""
    from migue.synth.sample import write_sample

    out = tmp_path_factory.mktemp("sample")
    write_sample(out, videos=12, seed=1, frames=260)
    return out


@pytest.fixture(scope="session")
def manifest(sample_dir):
    from migue.pipeline.datasets import read_dataset

    return read_dataset(sample_dir, window=64)

"""How many units go into one forward pass."""
from __future__ import annotations

import logging

import numpy as np
import torch

from .backbone import forward
from .modalities import get_modality
from .options import ExtractOptions

log = logging.getLogger("migue.extract")

CUDA_MEMORY_SHARE = 0.6  # auto batch on CUDA: use at most this share of the free memory
MAX_AUTO_BATCH = 256


def batch_for_memory(free_bytes: int, per_unit_bytes: int, share: float = CUDA_MEMORY_SHARE,
                     cap: int = MAX_AUTO_BATCH) -> int:
    """Units per batch that fit `share` of `free_bytes` at `per_unit_bytes` each, rounded down to
    a power of two (stable across small changes in free memory), between 1 and `cap`."""
    fit = int(share * free_bytes // max(per_unit_bytes, 1))
    return max(1, min(cap, 1 << (fit.bit_length() - 1) if fit >= 1 else 1))


def resolve_batch_size(opts: ExtractOptions, model: torch.nn.Module, device: torch.device, precision: str,
                       sample: np.ndarray | None) -> int:
    """opts.batch_size when given. Auto: the modality's CPU batch on CPU; on CUDA as many units as
    fit in CUDA_MEMORY_SHARE of the free memory, measured with a forward of one decoded `sample`."""
    if opts.batch_size:
        return opts.batch_size
    if device.type != "cuda" or sample is None:
        return get_modality(opts.modality).cpu_batch if device.type != "cuda" else 4
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    forward(model, torch.from_numpy(sample[None]), device, precision)
    per_unit = torch.cuda.max_memory_allocated(device) - before
    free, _ = torch.cuda.mem_get_info(device)
    batch = batch_for_memory(free, per_unit)
    log.info("%s: batch size %d (one unit peaks at %.0f MB, %.1f GB free on %s)", opts.modality, batch,
             per_unit / 1e6, free / 1e9, torch.cuda.get_device_name(device))
    return batch

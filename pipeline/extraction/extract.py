"""Stage one for one modality: `extract()` plans the run (`plan.py`) and executes it with the
one-pass engine (`onepass.py`), like every other road into stage one."""
from __future__ import annotations

import torch

from migue.cache import EntryWriter, FeatureStore
from migue.pipeline.datasets.manifest import Manifest

from .backbone import entry_config
from .onepass import execute_plan
from .options import ExtractOptions, ExtractReport
from .plan import plan_extraction, request

__all__ = ["ExtractOptions", "ExtractReport", "extract", "open_entry"]


def extract(manifest: Manifest, store: FeatureStore, opts: ExtractOptions, only: set[str] | None = None,
            model: torch.nn.Module | None = None) -> ExtractReport:
    """Extract every pending unit of the modality into its cache entry; resumable.

    `only` restricts the work to these unit ids; `model` is a backbone already built by
    `build_model(opts)`."""
    plan = plan_extraction(manifest, store, [request(opts)], only)
    name = plan.entries[0].name
    return execute_plan(plan, store, {name: model} if model is not None else None).reports[name]


def open_entry(manifest: Manifest, store: FeatureStore, opts: ExtractOptions, precision: str) -> EntryWriter:
    """The writer of the entry these options fill (created if new); no model is built."""
    return store.writer(entry_config(opts, precision, manifest))

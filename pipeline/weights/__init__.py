"""The weights store: released checkpoints fetched or added whole and checked (`migue weights`)."""
from .fetch import Fetched, Wanted, fetch, for_entry, for_url
from .store import MANIFEST, WeightsError, WeightsStore, resolve_checkpoint, store_dir

__all__ = ["MANIFEST", "Fetched", "Wanted", "WeightsError", "WeightsStore", "fetch", "for_entry", "for_url",
           "resolve_checkpoint", "store_dir"]

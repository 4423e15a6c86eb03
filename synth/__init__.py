"""The synthetic iMiGUE sample generator: a product of its own (`migue synth`) and the test
fixtures' source. It writes the release formats, so it reads their facts from
`migue.pipeline.datasets` (keypoint order, class names, pack joints) and nothing else of migue."""
from .sample import LAYOUTS, SynthSummary, write_sample

__all__ = ["LAYOUTS", "SynthSummary", "write_sample"]

"""The modality table: one row per modality, everything about a backbone in one place.

A row names its extractor, the unit kind it covers, its default frames and size, how a unit
becomes its input, which options shape its numbers (they are the extractor's build arguments,
so the extractor's spec, and the cache key, follow from the row and the options without
building the model), which inputs its unit fingerprints read (`reads`: video, skeleton), the
`--arch` values it takes, and the fusion streams its entries hold (`streams`: rgb -> rgb;
pose -> joint, bone). The checkpoint formats it reads are its extractor's (`weight_formats`,
declared where the extractor registers). Code is handed `Modality` objects (`get_modality`).

Every row, built-in or not, enters through `register_modality(row, extractor_factory, ...)`:
it checks the row is complete, registers the extractor when given, and copies the streams
into `migue.cache.streams`, where stage two finds them without importing this module. Plugin
rows load like heads: `--plugin MODULE_OR_FILE`, or the `migue.modalities` entry-point group
(the built-in table below is that group's `builtin` entry). Adding a built-in backbone: one
file in `extractors/` and one row here; a plugin backbone: one file (`examples/plugins/backbone.py`).
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from migue.cache import KINDS, MG_KIND, WINDOW_KIND
from migue.cache.units import DENSE_KIND
from migue.cache.streams import Stream, register_stream

if TYPE_CHECKING:  # the rows are metadata: importing them (stage two's stream table does) decodes nothing
    from migue.pipeline.datasets.manifest import Unit, Video

    from .decode_worker import Take
    from .inputs import InputConfig

UnitInput = Callable[["Unit", "Video", "InputConfig", "Path | None"], np.ndarray]
UnitTakes = Callable[["Unit", "Video", "InputConfig", "Path | None"], "tuple[Take, ...]"]
MakeConfig = Callable[[int, int, Any], "InputConfig"]  # (frames, size, options) -> InputConfig


@dataclass(frozen=True)
class Modality:
    """One modality: its extractor, its units, its defaults and how a unit becomes its input."""

    name: str
    extractor: str  # registered extractor name
    unit_kind: str  # which units it covers: MG clips or emotion windows
    frames: int  # default frames per unit
    size: int  # default frame side (0: not an image input)
    unit_input: UnitInput  # (unit, video, input config, parsed-skeleton dir) -> the unit's input
    make_config: MakeConfig  # how its units are sampled and decoded
    shaping: tuple[str, ...]  # ExtractOptions fields passed to the extractor: they shape its numbers
    reads_skeleton: bool  # its inputs come from (or are placed by) the skeletons
    cpu_batch: int  # units per CPU batch: 1 for MViTv2 (slower per clip in larger batches, perf-facts.md)
    fixed_arch: str = ""  # the entry's arch label when no option names it
    takes: UnitTakes | None = None  # the video frames a unit's input is cut from (decoded once per video by
    # the one-pass engine); None: `unit_input` computes the input without decoding (pose, from the skeleton)
    streams: tuple[Stream, ...] = ()  # the fusion streams its entries hold (name, entry dataset, dim)
    reads: tuple[str, ...] = ()  # what its unit fingerprints hash: some of FINGERPRINT_PARTS
    archs: tuple[str, ...] = ()  # the `--arch` values it takes (when "arch" is among `shaping`)
    source: str = "built-in"  # or the plugin (module name or file path) that registered it
    any_frames: bool = False  # its backbone takes any number of frames (2s-AGCN), not a fixed count set by
    # its weights (MViTv2's 16): over dense windows its default frames are then capped at the window's

    @property
    def weight_formats(self) -> tuple[str, ...]:
        """The checkpoint formats its extractor reads (declared where the extractor registers)."""
        from migue.extractors.registry import extractor_formats

        return extractor_formats(self.extractor)

    def kind(self, opts: Any) -> str:
        """The unit kind a run with `opts` covers: the one asked for, else this row's own."""
        return getattr(opts, "unit_kind", None) or self.unit_kind

    def resolved(self, opts: Any) -> dict[str, Any]:
        """frames and size of `opts`, with this modality's defaults where None. Over dense windows
        a backbone that takes any frame count (`any_frames`) gets at most the window's: a 32-frame window
        is not resampled up to 2s-AGCN's 64 (twice the work for no new frame); MViTv2 keeps its 16, the
        count its released weights are built for."""
        frames = self.frames
        if self.any_frames and self.kind(opts) == DENSE_KIND:
            frames = min(frames, getattr(opts, "dense_window", frames))
        return {"frames": opts.frames or frames, "size": opts.size or self.size}

    def extractor_args(self, opts: Any) -> dict[str, Any]:
        """The extractor's build arguments: the shaping options, defaults resolved."""
        values = {**vars(opts), **self.resolved(opts)}
        return {name: values[name] for name in self.shaping}

    def input_config(self, opts: Any) -> InputConfig:
        """How this modality's units are sampled and decoded under `opts`."""
        resolved = self.resolved(opts)
        return self.make_config(resolved["frames"], resolved["size"], opts)

    def arch(self, opts: Any) -> str:
        """The arch label of the entry name and key: the option that names it, else `fixed_arch`."""
        args = self.extractor_args(opts)
        return str(args["arch"] if "arch" in args else args.get("layout", self.fixed_arch))


def _rgb(unit: Unit, video: Video, cfg: InputConfig, parsed_dir: Path | None) -> np.ndarray:
    from .inputs import rgb_clip

    return rgb_clip(unit, video, cfg)


def _pose(unit: Unit, video: Video, cfg: InputConfig, parsed_dir: Path | None) -> np.ndarray:
    from .inputs import pose_clip

    return pose_clip(unit, video, cfg, parsed_dir)


def _faces_input(unit: Unit, video: Video, cfg: InputConfig, parsed_dir: Path | None) -> np.ndarray:
    from .inputs import face_crops

    return face_crops(unit, video, cfg, parsed_dir)


def _clip_takes(unit: Unit, video: Video, cfg: InputConfig, parsed_dir: Path | None) -> tuple[Take, ...]:
    if video.video_path is None:
        raise FileNotFoundError(f"video {video.video_id}: no video file")
    from .inputs import clip_takes

    return clip_takes(unit, video, cfg)


def _face_takes(unit: Unit, video: Video, cfg: InputConfig, parsed_dir: Path | None) -> tuple[Take, ...]:
    if video.video_path is None:
        raise FileNotFoundError(f"video {video.video_id}: no video file")
    from .inputs import face_takes

    return face_takes(unit, video, cfg, parsed_dir)


def _cropped(frames: int, size: int, opts: Any) -> InputConfig:
    from .inputs import InputConfig

    return InputConfig(frames=frames, size=size, resize="crop")  # short side to `size`, centre crop


def _squashed(frames: int, size: int, opts: Any) -> InputConfig:
    from .inputs import InputConfig

    return InputConfig(frames=frames, size=size, resize="squash")  # the whole frame, squashed


def _skeleton(frames: int, size: int, opts: Any) -> InputConfig:
    from migue.extractors.skeleton_layouts import get_layout

    from .inputs import InputConfig

    return InputConfig(frames=frames, joints=get_layout(opts.layout).joints)


def _faces(frames: int, size: int, opts: Any) -> InputConfig:
    from .inputs import InputConfig

    return InputConfig(frames=frames, face_size=size)


FINGERPRINT_PARTS = ("video", "skeleton")  # the inputs a unit fingerprint can read (fingerprints.py)
MODALITIES: dict[str, Modality] = {}  # filled by register_modality only


def register_modality(modality: Modality, extractor_factory: Callable[..., Any] | None = None, *,
                      spec: Callable[..., Any] | None = None, description: str = "",
                      formats: Sequence[str] = ()) -> Modality:
    """Register a modality row (and, with `extractor_factory`, its extractor under `modality.extractor`,
    with `spec`, `description` and the checkpoint `formats` it reads); returns the row as registered.

    The row must be complete: a known unit kind, streams, the inputs its fingerprints read, and a
    `--arch` list when "arch" shapes it; with a factory, also its extractor's spec under the row's
    defaults must hold every declared stream with its dim (checked before anything is registered:
    a bad row leaves no trace). The built-in rows' extractors are checked by `check_streams` in
    tests/test_backbone_plugin.py, so that importing this table needs no torch.
    Otherwise a ValueError names the row and what is wrong. The same plugin registering again
    (imported twice) is a no-op."""
    source = _source(_caller_module())
    modality = replace(modality, source=source) if modality.source == "built-in" else modality
    old = MODALITIES.get(modality.name)
    if old is not None:
        if old.source == modality.source:
            return old
        raise ValueError(f"modality {modality.name!r} is registered twice ({old.source} and {modality.source})")
    _check_row(modality)
    if extractor_factory is not None:
        if spec is None:
            raise ValueError(f"modality {modality.name!r}: an extractor factory needs its `spec` (its streams "
                             "and shapes, known without building it)")
        if not formats:
            raise ValueError(f"modality {modality.name!r}: name the checkpoint `formats` its extractor reads")
        _check_spec(modality, spec)  # before registering anything: a bad row leaves no trace
        from migue.extractors.registry import register_extractor

        register_extractor(modality.extractor, description or modality.name, spec, formats)(extractor_factory)
    for stream in modality.streams:
        register_stream(stream, modality.name, modality.source)
    MODALITIES[modality.name] = modality
    return modality


def _check_row(m: Modality) -> None:
    where = f"modality {m.name!r}"
    if not m.name or m.name.strip() != m.name or "," in m.name or m.name == "all":
        raise ValueError(f"{where}: a name must be non-empty, without spaces or commas, and not 'all'")
    if m.unit_kind not in KINDS:
        raise ValueError(f"{where}: unit kind {m.unit_kind!r} is not one of {KINDS}")
    if not m.reads or any(p not in FINGERPRINT_PARTS for p in m.reads):
        raise ValueError(f"{where}: `reads` {list(m.reads)} must name the inputs its fingerprints hash, some of "
                         f"{FINGERPRINT_PARTS}")
    if ("arch" in m.shaping) != bool(m.archs):
        raise ValueError(f"{where}: `archs` lists the --arch values it takes exactly when 'arch' shapes it "
                         f"(shaping {list(m.shaping)}, archs {list(m.archs)})")
    if not m.streams:
        raise ValueError(f"{where}: declares no streams (what its entries hold for stage two)")


def check_streams(m: Modality) -> None:
    """A ValueError unless `m`'s extractor is registered, reads some checkpoint format, and its spec
    under the row's defaults writes each declared stream with the declared dim."""
    from migue.extractors.registry import extractor_formats, extractor_spec, list_extractors

    where = f"modality {m.name!r}"
    if m.extractor not in list_extractors():
        raise ValueError(f"{where}: extractor {m.extractor!r} is not registered (known: "
                         f"{', '.join(list_extractors())}); pass its factory to register_modality")
    if not extractor_formats(m.extractor):
        raise ValueError(f"{where}: extractor {m.extractor!r} declares no checkpoint format it reads "
                         "(register_extractor(..., formats=...))")
    _check_spec(m, lambda **args: extractor_spec(m.extractor, **args))


def _check_spec(m: Modality, spec: Callable[..., Any]) -> None:
    from .options import ExtractOptions

    made = spec(**m.extractor_args(ExtractOptions(modality=m.name))).streams
    for stream in m.streams:
        if stream.dataset not in made or made[stream.dataset].dim != stream.dim:
            found = {k: v.dim for k, v in made.items()}
            raise ValueError(f"modality {m.name!r}: stream {stream.name!r} reads {stream.dataset!r} of dim "
                             f"{stream.dim}, but extractor {m.extractor!r} writes {found} with the row's defaults")


def _caller_module() -> str:
    frame = sys._getframe(2)  # register_modality's caller
    return str(frame.f_globals.get("__name__", ""))


def _source(module: str) -> str:
    """'built-in' for migue's own modules; else what `--plugin` takes back: a plugin file's path (its
    module was given a `migue_plugin_` name by the loader), or the module's name."""
    if module.startswith("migue."):
        return "built-in"
    loaded = sys.modules.get(module)
    path = getattr(loaded, "__file__", None)
    return str(Path(path).resolve()) if module.startswith("migue_plugin_") and path else module


MVIT_OPTIONS = ("arch", "frames", "size")
MVIT_ARCHS = ("small", "tiny")
VIDEO, SKELETON = ("video",), ("skeleton",)
# pooling at load time (training config key, default, choices): none | time (mean over the places of each
# time step) | space (mean over time per place: rgb h,w cell, pose joint) | mean | cls (the class token)
RGB_POOLS, CONTEXT_POOLS = ("none", "time", "space", "mean", "cls"), ("none", "time", "mean", "cls")
POSE_POOLS, FACE_POOLS = ("none", "time", "space", "mean"), ("none", "time", "mean")
for _row in (
    Modality("rgb", "mvit", MG_KIND, 16, 224, _rgb, _cropped, MVIT_OPTIONS, False, 1, takes=_clip_takes,
             streams=(Stream("rgb", "tokens", 768, pool_key="rgb_pool", pool="time", pools=RGB_POOLS),),
             reads=VIDEO, archs=MVIT_ARCHS),
    Modality("pose", "agcn", MG_KIND, 64, 0, _pose, _skeleton, ("layout", "frames"), True, 4,
             streams=(Stream("joint", "joint", 256, "pose-joint", "pose_pool", "space", POSE_POOLS),
                      Stream("bone", "bone", 256, "pose-bone", "pose_pool", "space", POSE_POOLS)), reads=SKELETON,
             any_frames=True),
    Modality("face", "swinface", WINDOW_KIND, 8, 112, _faces_input, _faces, ("frames",), True, 4, fixed_arch="swin-t",
             takes=_face_takes, streams=(Stream("face", "embedding", 512, pool_key="face_pool", pools=FACE_POOLS),),
             reads=VIDEO + SKELETON),  # crops are placed by the skeleton's head joints
    Modality("context", "mvit", WINDOW_KIND, 16, 224, _rgb, _squashed, MVIT_OPTIONS, False, 1, takes=_clip_takes,
             streams=(Stream("context", "tokens", 768, pool_key="context_pool", pool="time", pools=CONTEXT_POOLS),),
             reads=VIDEO, archs=MVIT_ARCHS),
):
    register_modality(_row)


def get_modality(name: str) -> Modality:
    """A row by name, with a clear error listing the known ones (plugins must be loaded first)."""
    if name not in MODALITIES:
        raise ValueError(f"unknown modality {name!r}; known: {sorted(MODALITIES)}")
    return MODALITIES[name]

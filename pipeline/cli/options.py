"""Options and helpers shared by several `migue` commands (kept light: importing this module
must not import torch, so `migue --help` stays fast)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from migue.common.windows import DEFAULT_WINDOW


CACHE_HELP = "Feature store root (default: $MIGUE_CACHE or ~/.cache/migue)."
DATA_HELP = ("Dataset folder as it unpacks (a release layout, or `migue synth` output); give it again "
             "for each folder read as one dataset (e.g. phase 1 and phase 2, skeletons and RGB apart).")


def data_layouts() -> tuple[str, ...]:
    """`auto` and every registered release layout."""
    from migue.pipeline.datasets import LAYOUTS

    return ("auto", *LAYOUTS)



SCOPE_HELP = ("The dataset to use (as given to `migue extract`): exactly its units are read from the cache "
              "entries, refusing units it has that an entry lacks or holds from other inputs. Without it, an entry "
              "holding units of another dataset than the one last extracted into it is refused. ")




ALLOW_PARTIAL_HELP = ("Use an entry that `migue extract` is still writing (its published units only); by default "
                      "such an entry is refused, naming what is still claimed.")



def refuse_empty_train(manifest: object) -> None:
    """Refuse to extract or train on nothing: the sentence says where the reader looked."""
    reason = getattr(manifest, "empty_splits", {}).get("train")
    if reason:
        raise click.ClickException(f"{reason}; nothing to train on (`migue data check` lists what was found)")



def load_plugins_option(ctx: click.Context, param: click.Parameter, modules: tuple[str, ...]) -> tuple[str, ...]:
    """--plugin: import the modules (or .py files) that register heads, before --help or --fusion
    are looked at (an eager option)."""
    from migue.fusion import load_plugins

    try:
        load_plugins(modules)
    except ImportError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return modules


def load_modality_plugins_option(ctx: click.Context, param: click.Parameter,
                                 modules: tuple[str, ...]) -> tuple[str, ...]:
    """--plugin of the commands that read modality rows (extract, cache verify): import the modules
    (or .py files) that register modalities (`register_modality`), then the `migue.modalities` entry
    points, before --modality, --arch or --help are looked at."""
    from migue.cache.streams import load_modality_plugins
    from migue.common.plugins import import_plugins

    try:  # the one loader of --plugin modules, without the heads' registry and entry points (torch)
        import_plugins(modules)
    except ImportError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    load_modality_plugins()
    return modules


def modality_plugin_option(command: click.Command) -> click.Command:
    """--plugin MODULE (repeatable, eager) of a command that reads modality rows."""
    return click.option("--plugin", "plugins", multiple=True, metavar="MODULE", is_eager=True,
                        callback=load_modality_plugins_option, expose_value=False,
                        help="Import MODULE (a module name or a .py file) that registers modalities with "
                             "migue.pipeline.extraction.register_modality; repeatable. Those of the "
                             "`migue.modalities` entry-point group load by themselves.")(command)


def scope_options(command: click.Command) -> click.Command:
    """--data, --layout and --window of fuse-train and evaluate: the dataset whose units to use."""
    command = click.option("--window", type=int, default=DEFAULT_WINDOW, show_default=True,
                           help="Frames per emotion window, as given to extract (with --data).")(command)
    command = click.option("--layout", "data_layout", type=click.Choice(data_layouts()), default="auto",
                           show_default=True, help="Layout of --data.")(command)
    return click.option("--data", "data_root", type=click.Path(path_type=Path, exists=True, file_okay=False),
                        multiple=True, help=SCOPE_HELP + DATA_HELP)(command)



def pairs(items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def json_value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


"""`fuse-train --help` lists the heads from `fusion/catalogue.py` (through fusion/helptext.py) without importing torch (issue 24:
every --help under 2 s), the catalogue equals the registry's built-in heads, and with a plugin in play
the help asks the registry (plugin heads, built-in heads fitting a plugin task)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from migue.fusion.catalogue import BUILTIN_HEADS

# a fresh process: the registry as a user's process sees it, no test's plugin head or task in it
REGISTRY = textwrap.dedent("""
    import json, sys
    from migue.fusion import helptext
    light = {"text": helptext.heads_help(), "mg": helptext.heads_help("mg"), "torch": "torch" in sys.modules}
    from migue.fusion import registry
    heads = [[n, registry._HEADS[n].task_names(), d, registry._HEADS[n].source] for n, d in registry.list_heads().items()]
    print(json.dumps({"light": light, "heads": heads, "text": registry.heads_help(), "mg": registry.heads_help("mg")}))
""")


def _help(*args: str) -> tuple[str, bool]:
    """(the output of `migue fuse-train ARGS --help` in a fresh process, whether it imported torch)."""
    code = ("import sys; from migue.pipeline.cli import main\n"
            f"try:\n    main(['fuse-train', *{list(args)!r}, '--help'])\nexcept SystemExit:\n    pass\n"
            "print('TORCH', 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "Usage:" in out, out
    return out, out.strip().splitlines()[-1] == "TORCH True"


def _heads_section(out: str) -> dict[str, str]:
    """Head name -> its help line, from the epilog's `Heads (--fusion):` part."""
    lines = out.split("Heads (--fusion):", 1)[1].strip().splitlines()[:-1]  # the last line is TORCH
    return {line.split()[0]: line.strip() for line in lines}


def test_catalogue_equals_the_registry_builtin_heads() -> None:
    # fails when a head file is added (or a head renamed, re-described, fitted to other tasks) and the
    # catalogue is not: the registry, loaded for real, is the reference
    found = json.loads(subprocess.run([sys.executable, "-c", REGISTRY], capture_output=True, text=True,
                                      check=True).stdout)
    assert [[h.name, list(h.tasks), h.description, "built-in"] for h in BUILTIN_HEADS] == found["heads"]
    assert found["light"]["torch"] is False  # the catalogue answered without the registry
    assert found["light"]["text"] == found["text"] and found["light"]["mg"] == found["mg"]


def test_catalogue_has_the_heads_of_every_builtin_task() -> None:
    # by hand: 17 heads (5 fusion/baselines, 2 probes x 5 built-in streams, 2 online)
    names = [h.name for h in BUILTIN_HEADS]
    assert len(names) == len(set(names)) == 17
    assert {"cmtf", "interfusion", "late", "late-pose", "concat", "probe-linear-pose-bone", "probe-mlp-context",
            "detect", "window-probe"} <= set(names)
    fits = {h.name: h.tasks for h in BUILTIN_HEADS}
    assert fits["late"] == ("mg", "emotion") and fits["interfusion"] == ("emotion",) and fits["detect"] == ("online",)


def test_fuse_train_help_imports_no_torch_and_lists_every_head_and_task() -> None:
    out, torch = _help()
    assert not torch
    tasks = out.split("Tasks (--task):", 1)[1].split("Heads (--fusion):", 1)[0]
    assert [line.split()[0] for line in tasks.strip().splitlines()] == ["mg", "emotion", "online"]
    heads = _heads_section(out)
    assert list(heads) == [h.name for h in BUILTIN_HEADS]
    assert heads["late"].startswith("late") and "[mg,emotion]  late fusion: average" in heads["late"]
    assert "[online]  temporal detection over window tokens" in heads["detect"]


TASK_PLUGIN = '''
from migue.fusion.tasks import Task, register_task

register_task(Task(
    name="mg-halves", description="MG clips in two groups (a plugin task)",
    unit_kind="mg", items="clip", labels=lambda units: units["mg_label"] % 2, class_names=("even", "odd"),
    loss="cross-entropy", metrics=("macro_f1", "top1"), default_head="concat",
    modalities=("rgb", "pose"), streams=("rgb", "joint", "bone"), figures=("curves",),
))
'''

HEAD_PLUGIN = '''
from torch import nn

from migue.fusion import register_head


@register_head("plugin-first-token", tasks=("mg",), inputs=("rgb",))
class FirstToken(nn.Module):
    """The first rgb token, one linear layer (a plugin head)."""

    def __init__(self, shapes, num_classes):
        super().__init__()
        self.fc = nn.Linear(shapes["rgb"][1], num_classes)

    def forward(self, batch):
        return self.fc(batch["rgb"][:, 0])  # (B, C)
'''


def test_with_plugins_the_help_asks_the_registry(tmp_path: Path) -> None:
    task, head = tmp_path / "halves_task.py", tmp_path / "first_token.py"
    task.write_text(TASK_PLUGIN)
    head.write_text(HEAD_PLUGIN)
    out, _ = _help("--plugin", str(task), "--plugin", str(head))
    assert "mg-halves  MG clips in two groups (a plugin task)" in out
    heads = _heads_section(out)
    # the plugin head, with where it comes from
    assert heads["plugin-first-token"].endswith(f"(plugin: {head.resolve()})")
    # built-in heads whose test of a Task passes the plugin task (clips, not binary, rgb+joint+bone) fit it
    assert "[mg,mg-halves]  Cross-Modal Token Fusion" in heads["cmtf"]
    assert "[mg,emotion,mg-halves]  late fusion" in heads["late"]
    assert "[mg,mg-halves]  linear probe on pooled rgb" in heads["probe-linear-rgb"]
    assert "[emotion]  InterFusion" in heads["interfusion"] and "[online]  temporal" in heads["detect"]


def test_a_plugin_task_alone_also_asks_the_registry(tmp_path: Path) -> None:
    # no plugin head, but the built-in heads' lines change: the catalogue cannot answer
    task = tmp_path / "halves_task.py"
    task.write_text(TASK_PLUGIN)
    out, torch = _help("--plugin", str(task))
    assert torch and "[mg,mg-halves]  classic 2s-AGCN ensemble" in _heads_section(out)["late-pose"]


def test_a_plugin_modality_adds_its_stream_probes_to_the_help() -> None:
    # examples/plugins/backbone.py registers the modality rgb-small (no head, no task): its stream gets the
    # probes every stream gets, which only the registry knows
    plugin = Path(__file__).resolve().parents[1] / "examples" / "plugins" / "backbone.py"
    out, torch = _help("--plugin", str(plugin))
    heads = _heads_section(out)
    assert torch and "probe-linear-rgb-small" in heads and "probe-mlp-rgb-small" in heads, out
    assert "probe-linear-rgb" in heads  # the built-in ones stay

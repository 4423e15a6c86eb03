"""Settings carry types and ranges (issue 23, case 11): a bad `--set` value is one sentence naming the
setting, the value and what is allowed, given before anything is read or trained."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from migue.fusion import register_head, resolve_config
from migue.fusion.synthetic import write_mg
from migue.pipeline.cli import main


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    write_mg(root, per_class=(2, 1, 1))
    return root


def _assert_refused(cache, tmp_path, head: str, setting: str, said: str) -> None:
    """fuse-train --set SETTING exits 2 with exactly `said`, before a run folder exists."""
    result = CliRunner().invoke(main, ["fuse-train", "--task", "mg", "--cache", str(cache), "--out",
                                       str(tmp_path / "run"), "--fusion", head, "--set", setting])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == said, result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("setting", "message"), [
    ("batch_size=0", "setting batch_size=0: expected an integer >= 1"),
    ("lr=abc", "setting lr='abc': expected a number >= 0"),
    ("epochs=2.5", "setting epochs=2.5: expected an integer >= 1"),
    ("label_smoothing=1", "setting label_smoothing=1: expected a number >= 0 and < 1"),
    ("num_classes=1", "setting num_classes=1: expected an integer >= 2"),
    ("amp=1", "setting amp=1: expected true or false"),
    ("max_windows=0", "setting max_windows=0: expected an integer >= 1 or null"),
])
def test_a_bad_training_setting_is_one_sentence_before_anything_runs(cache, tmp_path, setting, message):
    """Old code: batch_size=0 was a ZeroDivisionError, lr=abc a TypeError, both tracebacks."""
    _assert_refused(cache, tmp_path, "probe-linear-rgb", setting, f"error: {message} (head 'probe-linear-rgb')")


@pytest.mark.parametrize(("head", "overrides", "message"), [
    ("cmtf", {"width": 0}, "setting width=0: expected an integer >= 1 (head 'cmtf')"),
    ("cmtf", {"dropout": "high"}, "setting dropout='high': expected a number >= 0 and <= 1 (head 'cmtf')"),
    ("cmtf", {"pose_streams": "joint"}, "setting pose_streams='joint': expected a list (head 'cmtf')"),
    ("interfusion", {"num_heads": -2}, "setting num_heads=-2: expected an integer >= 1 (head 'interfusion')"),
    ("probe-mlp-rgb", {"width": True}, "setting width=True: expected an integer >= 1 (head 'probe-mlp-rgb')"),
    ("probe-linear-rgb", {"seed": -1},
     "setting seed=-1: expected an integer >= 0 and <= 4294967295 (head 'probe-linear-rgb')"),
])
def test_each_heads_declared_settings_are_checked(head, overrides, message):
    task = "emotion" if head == "interfusion" else "mg"
    with pytest.raises(ValueError) as info:
        resolve_config(task, {"head": head, **overrides})
    assert str(info.value) == message


def test_a_plugin_heads_settings_take_the_type_of_their_default_and_may_declare_ranges():
    @register_head("plugin-typed-settings", tasks=("mg",), inputs=("rgb",),
                   settings={"scale": 1.0, "name": "x", "layers": 2}, ranges={"layers": (1, 8)})
    def build(shapes, num_classes, scale, name, layers):  # pragma: no cover - never built
        raise AssertionError

    resolve_config("mg", {"head": "plugin-typed-settings", "scale": 2, "layers": 8})  # an int is a number
    for overrides, message in (({"scale": "big"}, "setting scale='big': expected a number"),
                               ({"name": 3}, "setting name=3: expected a string"),
                               ({"layers": 9}, "setting layers=9: expected an integer >= 1 and <= 8")):
        with pytest.raises(ValueError, match=f"^{message} \\(head 'plugin-typed-settings'\\)$"):
            resolve_config("mg", {"head": "plugin-typed-settings", **overrides})


def test_good_settings_still_resolve():
    cfg = resolve_config("mg", {"head": "cmtf", "lr": 0, "batch_size": 1, "max_windows": None, "dropout": 0,
                                "modality_dropout": 1.0, "label_smoothing": 0.0, "memory_budget_gb": 0})
    assert cfg["batch_size"] == 1 and cfg["lr"] == 0


@pytest.mark.parametrize(("setting", "message"), [
    ("lr=NaN", "setting lr=nan: expected a number >= 0"),
    ("lr=Infinity", "setting lr=inf: expected a number >= 0"),
    ("dropout=Infinity", "setting dropout=inf: expected a number >= 0 and <= 1"),
    ("dropout=NaN", "setting dropout=nan: expected a number >= 0 and <= 1"),
])
def test_a_number_that_is_not_finite_is_refused(cache, tmp_path, setting, message):
    """Old code: NaN compares false with every bound, and Infinity passes an open-ended range."""
    _assert_refused(cache, tmp_path, "cmtf", setting, f"error: {message}, not NaN or infinite (head 'cmtf')")


@pytest.mark.parametrize("head", ["cmtf", "interfusion"])
def test_a_width_the_heads_do_not_divide_is_one_sentence(cache, tmp_path, head):
    """Old code: width=256, num_heads=3 passed the checks and died in torch's MultiheadAttention
    with an AssertionError traceback."""
    task = "emotion" if head == "interfusion" else "mg"
    with pytest.raises(ValueError, match=rf"^settings width=256, num_heads=3: width must be a multiple of "
                                         rf"num_heads \(each attention head takes width / num_heads\) "
                                         rf"\(head '{head}'\)$"):
        resolve_config(task, {"head": head, "num_heads": 3})
    resolve_config(task, {"head": head, "num_heads": 8})


def test_fuse_train_with_heads_that_do_not_divide_the_width_is_one_sentence(cache, tmp_path):
    result = CliRunner().invoke(main, ["fuse-train", "--task", "mg", "--cache", str(cache), "--out",
                                       str(tmp_path / "run"), "--fusion", "cmtf", "--set", "num_heads=3"])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == ("error: settings width=256, num_heads=3: width must be a multiple of num_heads "
                                     "(each attention head takes width / num_heads) (head 'cmtf')"), result.output
    assert not (tmp_path / "run").exists()

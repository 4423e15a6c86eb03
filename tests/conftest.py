"""Shared fixtures, made once per test run (session scope) and shared read-only: the generated
sample, its manifest and one Dask cluster. A test that mutates a sample copies it first.

At the end of the run every process a test started and left behind is reaped, and tmpfs mounts
under the pytest temp root (the disk-full test's) are unmounted, so an interrupted run leaves
nothing running or mounted."""
from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from filelock import FileLock

# One torch thread per pytest-xdist worker (two workers share two cores), else up to two.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, os.cpu_count() or 1))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tests on one torch thread (small heads: threads only add noise)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SAMPLE = dict(videos=12, seed=1, frames=260)  # the one generated sample every test reads


def _run_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temp folder of this test run: shared by every pytest-xdist worker (each has a folder below)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def made_once(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], object]) -> Path:
    """`make(folder)` run once per test run, whichever xdist worker asks first; the others wait for it.
    A folder counts as made only once `make` returned (a marker beside it, so nothing is added inside)."""
    root = _run_root(tmp_path_factory)
    folder, made = root / name, root / f"{name}.made"
    with FileLock(str(root / f"{name}.lock")):
        if not made.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a half-made one from a worker that died
            folder.mkdir()
            make(folder)
            made.touch()
    return folder


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory):
    """A generated MiGA 2025 sample: 12 videos, 260 frames each, 160x120. Read-only: copy it to change it."""
    from migue.synth.sample import write_sample

    return made_once(tmp_path_factory, "sample", lambda out: write_sample(out, **SAMPLE))


def write_small_packs(out: Path) -> Path:
    """The smallest pose dataset: ST-GCN baseline packs, 2 clips of 90 frames per split."""
    rng = np.random.default_rng(0)
    for video, part in enumerate(("train", "val", "test"), start=1):
        data = rng.random((2, 3, 90, 22, 1), dtype=np.float32)
        data[:, 2] = 0.9  # confidence
        np.save(out / f"{part}_data.npy", data)
        with open(out / f"{part}_label.pkl", "wb") as f:
            pickle.dump(([f"{video}_0", f"{video}_1"], [3, 7]), f)
    return out


@contextlib.contextmanager
def local_http_server(handler: type[BaseHTTPRequestHandler], **state):
    """A ThreadingHTTPServer on 127.0.0.1 (a free port) serving `handler`, with `state` set on it and
    `.url`; stopped and closed on exit."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    for name, value in state.items():
        setattr(httpd, name, value)
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture(scope="session")
def manifest(sample_dir):
    from migue.pipeline.datasets import read_dataset

    return read_dataset(sample_dir, window=64)


def clone(src: Path, dst: Path) -> Path:
    """A copy of a dataset folder whose videos are links (nothing is encoded or copied twice)."""
    for dirpath, _, filenames in os.walk(src):
        folder = dst / Path(dirpath).relative_to(src)
        folder.mkdir(parents=True, exist_ok=True)
        for name in filenames:
            source = Path(dirpath) / name
            if name.endswith(".mp4"):
                (folder / name).symlink_to(source.resolve())
            else:
                shutil.copy2(source, folder / name)
    return dst


@pytest.fixture(scope="session")
def release_layouts(sample_dir, tmp_path_factory) -> dict[str, Path]:
    """The session sample in every layout. The others are written without videos and get the
    session sample's videos linked in: same seed and sizes, so the same videos. Read-only: clone() it."""
    root = made_once(tmp_path_factory, "layouts", lambda out: _write_layouts(sample_dir, out))
    return {"miga2025": sample_dir, **{name: root / name for name in (*OTHER_LAYOUTS, "stgcn-labelled")}}


OTHER_LAYOUTS = ("imigue", "miga2023", "openpose-json", "stgcn")


def _write_layouts(sample_dir: Path, root: Path) -> None:
    from migue.synth.sample import write_sample

    videos = {p.stem: p for p in sample_dir.glob("imigue_rgb_*/**/*.mp4")}
    for layout in OTHER_LAYOUTS:
        write_sample(root / layout, layout=layout, rgb=False, **SAMPLE)
        for vid, video in videos.items():
            if layout == "stgcn":
                continue
            link = (root / layout / "videos" / f"{vid}.mp4" if layout == "imigue"
                    else root / layout / video.relative_to(sample_dir))
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(video)
    # the packs next to the MiGA label files (and the videos): clip frame ranges are recovered
    labelled = clone(root / "stgcn", root / "stgcn-labelled")
    for path in sample_dir.glob("**/imigue_skeleton_*/*/*_label.csv"):
        target = labelled / path.relative_to(sample_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    for vid, video in videos.items():
        (labelled / "rgb").mkdir(exist_ok=True)
        (labelled / "rgb" / f"{vid}.mp4").symlink_to(video)


@pytest.fixture(scope="session")
def dask_cluster():
    """One LocalCluster (2 worker processes, 1 thread each) for every test that runs on Dask."""
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        yield cluster


def _descendants(pid: int) -> list[int]:
    """Every live process below `pid` (from /proc), children first."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def reap_descendants(grace: float = 5.0) -> list[int]:
    """TERM, then KILL after `grace` seconds, every process this one started and left running."""
    left = _descendants(os.getpid())
    for pid in left:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in left):
        for pid in left:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        time.sleep(0.1)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def tmpfs_mounts_under(root: Path, mounts: str) -> list[str]:
    """The tmpfs mount points at or below `root` in a /proc/mounts text, deepest first."""
    root_text = str(Path(root).resolve())
    points = [fields[1] for fields in (line.split() for line in mounts.splitlines())
              if len(fields) > 2 and fields[2] == "tmpfs"]
    return sorted((p for p in points if p == root_text or p.startswith(root_text + "/")), key=len, reverse=True)


def unmount_under(root: Path) -> list[str]:
    """Unmount every tmpfs mounted at or below `root` (deepest first); the mount points it tried."""
    try:
        points = tmpfs_mounts_under(root, Path("/proc/self/mounts").read_text())
    except OSError:
        return []
    for point in points:
        subprocess.run(["umount", point], capture_output=True)
    return points


def _pytest_temp_root(config: pytest.Config) -> Path | None:
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None:
        return None
    return factory.getbasetemp().parent  # pytest-of-<user>: this run's folder and earlier ones


def pytest_sessionstart(session: pytest.Session) -> None:
    root = _pytest_temp_root(session.config)
    if root is not None and not os.environ.get("PYTEST_XDIST_WORKER"):
        unmount_under(root)  # an earlier, interrupted run's disk-full mounts


def _is_xdist_controller(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "numprocesses", None)) and not os.environ.get("PYTEST_XDIST_WORKER")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    root = _pytest_temp_root(session.config)
    if root is not None:
        unmount_under(session.config._tmp_path_factory.getbasetemp())
    if not _is_xdist_controller(session.config):  # xdist workers reap their own; the controller's children are them
        reap_descendants()


# The modules whose tests use the Dask cluster. Under `make test` (xdist) they run on one worker, so
# one cluster serves them all; a module that starts using `dask_cluster` must be named here (collection
# stops with a message saying so).
DASK_MODULES = ("test_ablate_out.py", "test_crash_consistency.py", "test_distributed.py", "test_end_to_end.py",
                "test_extract_summary.py", "test_grid_input.py", "test_refused_checkpoints.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Check DASK_MODULES, and run those modules first: under xdist they are one unit of work, the longest."""
    users = sorted({item.path.name for item in items if "dask_cluster" in item.fixturenames} - set(DASK_MODULES))
    if users:
        raise pytest.UsageError(f"{', '.join(users)} use(s) the dask_cluster fixture: add to DASK_MODULES in "
                                f"tests/conftest.py, so that xdist runs every Dask test on one worker")
    items.sort(key=lambda item: item.path.name not in DASK_MODULES)  # stable: order kept within each


def _scope(nodeid: str) -> str:
    """The xdist unit of work of a test: its module (module fixtures are made once), or 'dask'."""
    module = nodeid.split("::", 1)[0]
    return "dask" if Path(module).name in DASK_MODULES else module


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`--dist loadscope` with our scopes: each module on one worker, every Dask module on the same one.
    (xdist's own `loadgroup` marks do nothing under pytest 9.2: it rewrites a node id pytest no longer reads.)"""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleOrDaskScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _scope(nodeid)

    return ModuleOrDaskScheduling(config, log)

"""The suite cleans up after itself: processes a test left running are reaped, and tmpfs
mounts under the pytest temp folder are unmounted (conftest's session hooks)."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import reap_descendants, tmpfs_mounts_under, unmount_under


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_left_behind_process_and_its_child_are_reaped():
    # A child that starts a grandchild and ignores SIGTERM: only KILL after the grace period ends it.
    script = ("import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); time.sleep(600)")
    child = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        grandchildren = [int(p) for p in Path(f"/proc/{child.pid}/task/{child.pid}/children").read_text().split()]
        if grandchildren:
            break
        time.sleep(0.05)
    assert grandchildren, "the child never started its grandchild"
    reaped = reap_descendants(grace=0.5)
    child.wait(timeout=10)
    assert child.pid in reaped and grandchildren[0] in reaped
    deadline = time.monotonic() + 10
    while _alive(grandchildren[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchildren[0])


MOUNTS = """\
/dev/sda1 / ext4 rw 0 0
tmpfs /tmp/pytest-of-root/pytest-3/full0/cache tmpfs rw,size=1024k 0 0
tmpfs /tmp/pytest-of-root/pytest-3/full0 tmpfs rw,size=1024k 0 0
tmpfs /tmp/pytest-of-root/pytest-30 tmpfs rw 0 0
/dev/sdb1 /tmp/pytest-of-root/pytest-3/data ext4 rw 0 0
tmpfs /dev/shm tmpfs rw 0 0
"""


def test_only_tmpfs_mounts_inside_the_root_are_found_deepest_first():
    found = tmpfs_mounts_under(Path("/tmp/pytest-of-root/pytest-3"), MOUNTS)
    assert found == ["/tmp/pytest-of-root/pytest-3/full0/cache", "/tmp/pytest-of-root/pytest-3/full0"]


def test_a_tmpfs_left_under_the_temp_folder_is_unmounted(tmp_path):
    point = tmp_path / "full"
    point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(point)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root; test_only_tmpfs_mounts_... is its twin): "
                    f"{mounted.stderr.strip()}")
    assert unmount_under(tmp_path) == [str(point.resolve())]
    assert str(point.resolve()) not in Path("/proc/self/mounts").read_text()


def test_xdist_scopes_keep_a_module_together_and_every_dask_module_on_one_worker():
    from conftest import DASK_MODULES, _scope

    assert _scope("tests/test_cache.py::test_a[x]") == _scope("tests/test_cache.py::test_b") == "tests/test_cache.py"
    assert _scope("tests/test_cache.py::test_a") != _scope("tests/test_data.py::test_a")
    assert {_scope(f"tests/{name}::test_x[mg]") for name in DASK_MODULES} == {"dask"}

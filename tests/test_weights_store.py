"""`migue weights fetch / add` and the weights store, against a local HTTP server.

The server (http.server on 127.0.0.1, in a thread, started and stopped by each test) serves
2s-AGCN checkpoints written here in mmaction2's recognizer format (the released NTU-60 2D
geometry, coco layout), records every request's Range header and the bytes it sent, and can cut
a connection halfway. A disk-full store is simulated by an os.write that fails with ENOSPC for
files inside the store (no root needed).
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import socket
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import migue.extractors.weights as catalogue
from migue.extractors.weights import KnownWeights
from migue.pipeline.cli import main

from conftest import local_http_server, write_small_packs

JOINT, BONE = "2s-agcn-joint-ntu60-2d", "2s-agcn-bone-ntu60-2d"
JOINT_FILE = "2s-agcn_8xb16-joint-u100-80e_ntu60-xsub-keypoint-2d_20221222-4c0ed77e.pth"
BONE_FILE = "2s-agcn_8xb16-bone-u100-80e_ntu60-xsub-keypoint-2d_20221222-293878b5.pth"


# ---------------------------------------------------------------- the server
class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        srv = self.server
        asked = self.headers.get("Range")
        srv.requests.append({"path": self.path, "range": asked})
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        asked = None if srv.ignore_range else asked
        start = int(re.fullmatch(r"bytes=(\d+)-", asked)[1]) if asked else 0
        if start >= len(body) and asked:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(body)}")
            self.end_headers()
            return
        self.send_response(206 if asked else 200)
        if asked:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        rest = body[start:]
        cut = srv.cut.pop(self.path, None)  # cut this path's next response after `cut` bytes
        sent = rest[:cut] if cut is not None else rest
        try:
            self.wfile.write(sent)
        except (BrokenPipeError, ConnectionResetError):  # the client stopped reading (a refusal)
            return
        srv.sent.append(len(sent))
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    with local_http_server(_Handler, files={}, requests=[], sent=[], cut={}, ignore_range=False) as httpd:
        yield httpd


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- checkpoints in the released format
@pytest.fixture(scope="module")
def agcn_files(tmp_path_factory):
    """Joint and bone checkpoints as mmaction2 publishes them: {'meta', 'state_dict': backbone.* + cls_head.*}."""
    from migue.extractors.agcn import AGCNExtractor

    torch.manual_seed(11)
    model = AGCNExtractor(layout="coco", frames=16)
    out = {}
    for name, stream in ((JOINT_FILE, model.joint), (BONE_FILE, model.bone)):
        state = {f"backbone.{k}": v for k, v in stream.state_dict().items()}
        state.update({"cls_head.fc.weight": torch.randn(60, 256), "cls_head.fc.bias": torch.zeros(60)})
        path = tmp_path_factory.mktemp("ckpt") / name
        torch.save({"meta": {"epoch": 80}, "state_dict": state}, path)
        out[name] = path.read_bytes()
    return out


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _entry(key: str, file_name: str, url: str, **digests: str) -> KnownWeights:
    return KnownWeights(key, "agcn", "pose", "mmaction2-recognizer", file_name, url, **digests)


@pytest.fixture
def store(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    monkeypatch.setenv("MIGUE_WEIGHTS", str(folder))
    monkeypatch.delenv("MIGUE_WEIGHTS_MIRROR", raising=False)
    return folder


def _serve(server, monkeypatch, agcn_files, **digests_by_key: dict) -> None:
    """Serve both files and point the catalogue at the server (full digests unless overridden)."""
    entries = []
    for key, name in ((JOINT, JOINT_FILE), (BONE, BONE_FILE)):
        server.files[f"/models/{name}"] = agcn_files[name]
        digests = digests_by_key.get(key, {"sha256": _sha(agcn_files[name])})
        entries.append(_entry(key, name, f"{server.url}/models/{name}", **digests))
    monkeypatch.setattr(catalogue, "CATALOGUE", tuple(entries))


def _run(*args: str):
    return CliRunner().invoke(main, list(args))


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())["files"]


# ---------------------------------------------------------------- fetch, then extract from the store
@pytest.fixture(scope="module")
def pose_pack(tmp_path_factory):
    """The smallest pose dataset: ST-GCN baseline packs (N=2 clips of 90 frames per split)."""
    return write_small_packs(tmp_path_factory.mktemp("pack"))


def test_fetch_then_extract_with_checkpoint_keys_from_the_store(server, store, monkeypatch, agcn_files,
                                                                pose_pack, tmp_path, one_torch_thread):
    _serve(server, monkeypatch, agcn_files)
    result = _run("weights", "fetch", JOINT, BONE)
    assert result.exit_code == 0, result.output
    for key, name in ((JOINT, JOINT_FILE), (BONE, BONE_FILE)):
        assert f"{key}: fetched: {store / name}" in result.stdout
        assert (store / name).read_bytes() == agcn_files[name]
        record = _manifest(store)[name]
        assert record["sha256"] == _sha(agcn_files[name]) and record["key"] == key
        assert record["source"] == f"{server.url}/models/{name}"
    assert sorted(p.name for p in store.iterdir()) == sorted([JOINT_FILE, BONE_FILE, "manifest.json"])
    assert [r["range"] for r in server.requests] == [None, None]

    listing = _run("weights")
    assert listing.exit_code == 0, listing.output
    assert f"store:   {JOINT_FILE}: verified (sha256 {_sha(agcn_files[JOINT_FILE])}" in listing.stdout

    again = _run("weights", "fetch", JOINT)
    assert again.exit_code == 0 and f"{JOINT}: already in the store" in again.stdout
    assert len(server.requests) == 2  # nothing downloaded twice

    cache = tmp_path / "cache"
    result = _run("extract", "--modality", "pose", "--data", str(pose_pack), "--layout", "stgcn", "--cache",
                  str(cache), "--joints", "coco", "--frames", "16", "--workers", "0",
                  "--checkpoint", JOINT, "--checkpoint", BONE)
    assert result.exit_code == 0, result.output
    assert "RANDOM" not in result.output and "pose: 6 extracted, 0 already cached, 0 failed" in result.stdout
    (entry,) = [json.loads(p.read_text()) for p in cache.glob("pose-*/index.json")]
    assert entry["config"]["weights"]["sha256"] == [_sha(agcn_files[JOINT_FILE]), _sha(agcn_files[BONE_FILE])]


def test_a_checkpoint_key_not_in_the_store_names_the_fetch_to_run(store, tmp_path):
    result = _run("extract", "--modality", "pose", "--data", str(tmp_path), "--checkpoint", JOINT,
                  "--checkpoint", BONE)
    assert result.exit_code != 0
    assert f"{JOINT_FILE} is not in the weights store {store}; run `migue weights fetch {JOINT}`" in result.output
    result = _run("extract", "--modality", "face", "--data", str(tmp_path), "--checkpoint", "swinface")
    assert "`migue weights add FILE --as swinface-official`" in result.output


# ---------------------------------------------------------------- resume
def test_a_cut_download_resumes_with_a_range_request_for_the_rest(server, store, monkeypatch, agcn_files):
    _serve(server, monkeypatch, agcn_files)
    body = agcn_files[JOINT_FILE]
    half = len(body) // 2
    server.cut[f"/models/{JOINT_FILE}"] = half
    first = _run("weights", "fetch", JOINT, "--retries", "0")
    assert first.exit_code == 1
    assert "download interrupted at" in first.stderr and "rerun the same command to resume" in first.stderr
    part = store / f".{JOINT_FILE}.part"
    assert part.stat().st_size == half and not (store / JOINT_FILE).exists()
    assert f"partial download {part.name} ({half / 1e6:.1f} MB)" in _run("weights").stdout

    second = _run("weights", "fetch", JOINT)
    assert second.exit_code == 0, second.output
    assert f"{JOINT}: resumed at {half / 1e6:.1f} MB" in second.stdout
    assert server.requests[-1]["range"] == f"bytes={half}-"
    assert server.sent == [half, len(body) - half]  # only the rest was sent again
    assert (store / JOINT_FILE).read_bytes() == body and not part.exists()


def test_an_interrupted_download_is_retried_in_the_same_run(server, store, monkeypatch, agcn_files):
    _serve(server, monkeypatch, agcn_files)
    body = agcn_files[BONE_FILE]
    server.cut[f"/models/{BONE_FILE}"] = 1000
    result = _run("weights", "fetch", BONE, "--retries", "1")
    assert result.exit_code == 0, result.output
    assert [r["range"] for r in server.requests] == [None, "bytes=1000-"]
    assert (store / BONE_FILE).read_bytes() == body


def test_a_complete_partial_file_is_checked_and_published_without_more_bytes(server, store, monkeypatch,
                                                                              agcn_files):
    _serve(server, monkeypatch, agcn_files)
    body = agcn_files[JOINT_FILE]
    store.mkdir()
    (store / f".{JOINT_FILE}.part").write_bytes(body)  # killed after the last byte, before the rename
    result = _run("weights", "fetch", JOINT)
    assert result.exit_code == 0, result.output
    assert server.requests == [{"path": f"/models/{JOINT_FILE}", "range": f"bytes={len(body)}-"}]  # answered 416
    assert server.sent == [] and (store / JOINT_FILE).read_bytes() == body


def test_a_server_that_ignores_range_is_read_from_the_start(server, store, monkeypatch, agcn_files):
    _serve(server, monkeypatch, agcn_files)
    body = agcn_files[JOINT_FILE]
    store.mkdir()
    (store / f".{JOINT_FILE}.part").write_bytes(b"x" * 1000)
    server.ignore_range = True
    result = _run("weights", "fetch", JOINT)
    assert result.exit_code == 0, result.output
    assert server.sent == [len(body)] and (store / JOINT_FILE).read_bytes() == body


def test_a_download_another_process_holds_is_left_to_it(server, store, monkeypatch, agcn_files):
    import fcntl

    _serve(server, monkeypatch, agcn_files)
    store.mkdir()
    with open(store / f".{JOINT_FILE}.part", "wb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a live `migue weights fetch` holds it
        result = _run("weights", "fetch", JOINT)
    assert result.exit_code == 1 and "another process is downloading it" in result.stderr
    assert not (store / JOINT_FILE).exists()


def test_too_little_free_space_is_refused_before_writing(server, store, monkeypatch, agcn_files):
    import shutil

    _serve(server, monkeypatch, agcn_files)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    result = _run("weights", "fetch", BONE)
    assert result.exit_code == 1
    assert f"{BONE_FILE} needs {len(agcn_files[BONE_FILE]) / 1e6:.1f} MB more" in result.stderr
    assert _nothing_in(store) == []


# ---------------------------------------------------------------- refused downloads leave nothing
def _nothing_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_wrong_full_digest_is_refused_and_leaves_nothing(server, store, monkeypatch, agcn_files):
    wrong = _sha(b"another file")
    _serve(server, monkeypatch, agcn_files, **{JOINT: {"sha256": wrong}})
    result = _run("weights", "fetch", JOINT)
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()  # no progress bar off a terminal
    assert JOINT_FILE in line and "SHA-256 mismatch" in line
    assert f"expected {wrong}" in line and f"measured {_sha(agcn_files[JOINT_FILE])}" in line
    assert _nothing_in(store) == []


def test_a_wrong_published_prefix_is_refused(server, store, monkeypatch, agcn_files):
    _serve(server, monkeypatch, agcn_files, **{BONE: {"sha256_prefix": "293878b5"}})  # the real file's prefix
    result = _run("weights", "fetch", BONE)
    assert result.exit_code == 1
    assert "expected 293878b5... (published prefix)" in result.stderr
    assert f"measured {_sha(agcn_files[BONE_FILE])}" in result.stderr
    assert _nothing_in(store) == []


def test_a_matching_prefix_passes_and_says_only_the_prefix_was_checked(server, store, monkeypatch, agcn_files):
    prefix = _sha(agcn_files[BONE_FILE])[:8]
    _serve(server, monkeypatch, agcn_files, **{BONE: {"sha256_prefix": prefix}})
    result = _run("weights", "fetch", BONE)
    assert result.exit_code == 0, result.output
    assert f"matches the published SHA-256 prefix {prefix} (no full digest to check)" in result.stdout
    assert _manifest(store)[BONE_FILE]["sha256"] == _sha(agcn_files[BONE_FILE])


def test_a_404_names_the_file_and_leaves_nothing(server, store, monkeypatch, agcn_files):
    _serve(server, monkeypatch, agcn_files)
    del server.files[f"/models/{JOINT_FILE}"]
    result = _run("weights", "fetch", "all")
    assert result.exit_code == 1
    assert f"{JOINT_FILE}: {server.url}/models/{JOINT_FILE} answered HTTP 404" in result.stderr
    assert _nothing_in(store) == sorted([BONE_FILE, "manifest.json"])  # the other file still came


def test_no_network_is_one_clear_line(store, monkeypatch, agcn_files):
    port = _closed_port()
    monkeypatch.setattr(catalogue, "CATALOGUE", (_entry(JOINT, JOINT_FILE, f"http://127.0.0.1:{port}/x.pth"),))
    result = _run("weights", "fetch", JOINT)
    assert result.exit_code == 1 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot reach 127.0.0.1:{port} to fetch {JOINT_FILE} (connection refused)")
    assert "MIGUE_WEIGHTS_MIRROR" in line and "Traceback" not in result.output
    assert _nothing_in(store) == []


# ---------------------------------------------------------------- mirrors and --url
def test_a_mirror_folder_replaces_the_publishers_host(store, monkeypatch, agcn_files, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / JOINT_FILE).write_bytes(agcn_files[JOINT_FILE])
    unreachable = f"http://127.0.0.1:{_closed_port()}/{JOINT_FILE}"
    monkeypatch.setattr(catalogue, "CATALOGUE",
                        (_entry(JOINT, JOINT_FILE, unreachable, sha256=_sha(agcn_files[JOINT_FILE])),))
    monkeypatch.setenv("MIGUE_WEIGHTS_MIRROR", str(mirror))
    result = _run("weights", "fetch", JOINT)
    assert result.exit_code == 0, result.output
    assert (store / JOINT_FILE).read_bytes() == agcn_files[JOINT_FILE]
    assert _manifest(store)[JOINT_FILE]["source"] == str(mirror / JOINT_FILE)
    (mirror / JOINT_FILE).unlink()
    (store / JOINT_FILE).unlink()
    result = _run("weights", "fetch", JOINT)
    assert result.exit_code == 1 and f"no such file {mirror / JOINT_FILE}" in result.stderr


def test_a_mirror_url_replaces_the_publishers_host(server, store, monkeypatch, agcn_files):
    server.files[f"/mirror/{BONE_FILE}"] = agcn_files[BONE_FILE]
    monkeypatch.setattr(catalogue, "CATALOGUE", (_entry(BONE, BONE_FILE, "https://download.invalid/x.pth",
                                                        sha256=_sha(agcn_files[BONE_FILE])),))
    monkeypatch.setenv("MIGUE_WEIGHTS_MIRROR", f"{server.url}/mirror/")
    result = _run("weights", "fetch", BONE)
    assert result.exit_code == 0, result.output
    assert [r["path"] for r in server.requests] == [f"/mirror/{BONE_FILE}"]
    assert (store / BONE_FILE).read_bytes() == agcn_files[BONE_FILE]


def test_any_url_without_sha256_is_recorded_and_said_unchecked(server, store, agcn_files):
    server.files["/any/mine.pth"] = agcn_files[JOINT_FILE]
    result = _run("weights", "fetch", "--url", f"{server.url}/any/mine.pth")
    assert result.exit_code == 0, result.output
    assert "NOT CHECKED: no --sha256 given" in result.stdout
    assert _manifest(store)["mine.pth"]["sha256"] == _sha(agcn_files[JOINT_FILE])
    listing = _run("weights")
    assert "mine.pth: not catalogued" in listing.stdout and "NOT CHECKED" in listing.stdout
    refused = _run("weights", "fetch", "--url", f"{server.url}/any/mine.pth", "--sha256", "0" * 64)
    assert refused.exit_code == 1 and "SHA-256 mismatch" in refused.stderr


def test_a_url_to_a_published_file_name_is_held_to_the_published_digest(server, store, monkeypatch, agcn_files):
    _serve(server, monkeypatch, agcn_files, **{JOINT: {"sha256_prefix": "4c0ed77e"}})  # the real file's prefix
    server.files[f"/elsewhere/{JOINT_FILE}"] = agcn_files[JOINT_FILE]
    result = _run("weights", "fetch", "--url", f"{server.url}/elsewhere/{JOINT_FILE}")
    assert result.exit_code == 1 and "expected 4c0ed77e... (published prefix)" in result.stderr
    assert _nothing_in(store) == []


# ---------------------------------------------------------------- disk full
class DiskFull:
    """`fill(folder, after=N, name_part="")`: for files under `folder` whose name holds
    `name_part`, os.write fails with ENOSPC once N bytes went through (a disk filling up), and
    os.fsync fails with ENOSPC once they are spent (where delayed allocation reports it; so
    whichever way a helper writes, its fsync is reached); `free()` ends it."""

    def __init__(self) -> None:
        self.real = os.write, os.fsync

    def fill(self, folder: Path, after: int = 0, name_part: str = "") -> None:
        written, root = [0], str(folder.resolve())
        real_write, real_fsync = self.real

        def hit(fd: int) -> bool:
            target = os.readlink(f"/proc/self/fd/{fd}")
            return target.startswith(root) and name_part in Path(target).name

        def write(fd: int, data: bytes) -> int:
            if hit(fd):
                if written[0] + len(data) > after:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                written[0] += len(data)
            return real_write(fd, data)

        def fsync(fd: int) -> None:
            if hit(fd) and written[0] >= after:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real_fsync(fd)

        os.write, os.fsync = write, fsync

    def free(self) -> None:
        os.write, os.fsync = self.real


@pytest.fixture
def disk_full():
    disk = DiskFull()
    yield disk
    disk.free()


def test_a_full_disk_mid_download_leaves_nothing_and_a_rerun_succeeds(server, store, monkeypatch, agcn_files,
                                                                      disk_full):
    _serve(server, monkeypatch, agcn_files)
    store.mkdir()
    disk_full.fill(store, after=len(agcn_files[JOINT_FILE]) // 2)
    result = _run("weights", "fetch", JOINT)
    assert result.exit_code == 1
    assert f"no space left in {store} while writing {JOINT_FILE}" in result.stderr
    assert _nothing_in(store) == []
    disk_full.free()
    result = _run("weights", "fetch", JOINT)
    assert result.exit_code == 0, result.output
    assert (store / JOINT_FILE).read_bytes() == agcn_files[JOINT_FILE]


def test_a_full_disk_at_the_manifest_update_keeps_the_old_manifest(server, store, monkeypatch, agcn_files,
                                                                   disk_full):
    _serve(server, monkeypatch, agcn_files)
    assert _run("weights", "fetch", JOINT).exit_code == 0
    before = (store / "manifest.json").read_bytes()
    disk_full.fill(store, name_part="manifest.json")
    result = _run("weights", "fetch", BONE)
    assert result.exit_code == 1 and "manifest.json could not be updated" in result.stderr
    assert (store / "manifest.json").read_bytes() == before  # whole, and as it was
    assert _nothing_in(store) == sorted([BONE_FILE, JOINT_FILE, "manifest.json"])  # no temp file
    requests = len(server.requests)
    disk_full.free()
    result = _run("weights", "fetch", BONE)
    assert result.exit_code == 0 and f"{BONE}: already in the store" in result.stdout
    assert len(server.requests) == requests  # recorded without downloading again
    assert _manifest(store)[BONE_FILE]["sha256"] == _sha(agcn_files[BONE_FILE])


# ---------------------------------------------------------------- add (SwinFace)
def test_add_checks_the_official_swinface_format_and_copies_it_in(store, tmp_path, agcn_files):
    from test_weights import _official, swinface_reference_backbone

    official = tmp_path / "downloaded.pt"
    torch.save(_official(swinface_reference_backbone(torch.Generator().manual_seed(4))), official)
    wrong = tmp_path / "joint.pth"
    wrong.write_bytes(agcn_files[JOINT_FILE])
    refused = _run("weights", "add", str(wrong), "--as", "swinface-official")
    assert refused.exit_code == 1
    assert f"{wrong} is in format 'mmaction2-recognizer'" in refused.stderr and "nothing was added" in refused.stderr
    assert _nothing_in(store) == []

    result = _run("weights", "add", str(official), "--as", "swinface-official")
    assert result.exit_code == 0, result.output
    name = "checkpoint_step_79999_gpu_0.pt"
    assert (store / name).read_bytes() == official.read_bytes()
    record = _manifest(store)[name]
    assert record["sha256"] == _sha(official.read_bytes()) and record["key"] == "swinface"
    assert "loads strictly into the swinface extractor" in record["check"]
    assert _nothing_in(store) == sorted([name, "manifest.json"])
    from migue.pipeline.weights import WeightsStore, resolve_checkpoint

    assert resolve_checkpoint("swinface", WeightsStore(store)) == str(store / name)

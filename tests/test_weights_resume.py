"""The weights store against a file that changes on the server, a stored file edited in place,
and a download that has the store's own file name (issue 23, case 9).

The server is test_weights_store's (http.server on 127.0.0.1 in a thread, started and stopped
by each test), plus ETag / Last-Modified headers and If-Range as RFC 9110 says: a Range whose
If-Range names another version is answered 200 with the whole current file.
"""
from __future__ import annotations

import os

import pytest
from conftest import local_http_server
from test_weights_store import (JOINT, JOINT_FILE, _Handler, _manifest, _nothing_in, _run, _serve, _sha,
                                agcn_files, store)

from migue.pipeline.weights import WeightsError, WeightsStore, resolve_checkpoint

__all__ = ["agcn_files", "store"]  # fixtures used here


class _Versioned(_Handler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        srv = self.server
        version = srv.versions.get(self.path)
        srv.if_ranges.append(self.headers.get("If-Range"))
        asked = self.headers.get("If-Range")
        if asked is not None and srv.honour_if_range and asked != version:
            del self.headers["Range"]  # another version: the whole current file
        super().do_GET()

    def end_headers(self) -> None:
        version = self.server.versions.get(self.path)
        if version is not None:
            self.send_header(self.server.validator, version)
        for name, value in self.server.also.items():  # more validators beside it
            self.send_header(name, value)
        super().end_headers()


@pytest.fixture
def server():
    with local_http_server(_Versioned, files={}, requests=[], sent=[], cut={}, ignore_range=False, versions={},
                           if_ranges=[], honour_if_range=True, validator="ETag", also={}) as httpd:
        yield httpd


V1, V2 = '"v1"', '"v2"'
DATES = "Mon, 01 Jun 2026 10:00:00 GMT", "Tue, 02 Jun 2026 10:00:00 GMT"


def _two_versions(agcn_files) -> tuple[bytes, bytes]:
    """Two files of one size that differ in every half (a splice of them is neither)."""
    first = agcn_files[JOINT_FILE]
    return first, bytes(b ^ 0x5A for b in first)


def _cut_then_change(server, store, first: bytes, second: bytes, versions: tuple[str | None, str | None]):
    """Serve `first` (cut halfway), fail the fetch, then serve `second` under the next version."""
    path = "/any/mine.pth"
    server.files[path], server.cut[path] = first, len(first) // 2
    if versions[0]:
        server.versions[path] = versions[0]
    cut = _run("weights", "fetch", "--url", server.url + path, "--retries", "0")
    assert cut.exit_code == 1 and "download interrupted" in cut.stderr
    assert (store / ".mine.pth.part").stat().st_size == len(first) // 2
    server.files[path] = second
    if versions[1]:
        server.versions[path] = versions[1]
    return _run("weights", "fetch", "--url", server.url + path)


@pytest.mark.parametrize("header, versions", [("ETag", (V1, V2)), ("Last-Modified", DATES)])
def test_a_file_changed_on_the_server_is_fetched_whole_not_spliced(server, store, agcn_files, header, versions):
    first, second = _two_versions(agcn_files)
    server.validator = header
    result = _cut_then_change(server, store, first, second, versions)
    assert result.exit_code == 0, result.output
    assert server.if_ranges[-1] == versions[0]  # the resume named the version it had
    assert "resumed at" not in result.stdout
    assert (store / "mine.pth").read_bytes() == second
    assert _manifest(store)["mine.pth"]["sha256"] == _sha(second)
    assert _nothing_in(store) == ["manifest.json", "mine.pth"]


def test_a_206_of_another_version_starts_again(server, store, agcn_files):
    first, second = _two_versions(agcn_files)
    server.honour_if_range = False  # answers the Range of the new file, but names its version
    result = _cut_then_change(server, store, first, second, (V1, V2))
    assert result.exit_code == 0, result.output
    assert [r["range"] for r in server.requests][-2:] == [f"bytes={len(first) // 2}-", None]
    assert (store / "mine.pth").read_bytes() == second


def test_a_206_naming_a_new_etag_and_date_after_a_date_only_version_starts_again(server, store, agcn_files):
    """Old code: the held version had only Last-Modified and the answer only its strong ETag (the
    date was dropped beside one), so nothing compared and the two versions were spliced."""
    first, second = _two_versions(agcn_files)
    path, half = "/any/mine.pth", len(first) // 2
    server.files[path], server.cut[path] = first, half
    server.validator, server.versions[path] = "Last-Modified", DATES[0]
    cut = _run("weights", "fetch", "--url", server.url + path, "--retries", "0")
    assert cut.exit_code == 1 and (store / ".mine.pth.part").stat().st_size == half
    server.files[path], server.versions[path] = second, DATES[1]
    server.honour_if_range, server.also = False, {"ETag": V2}  # answers the Range of the new file
    result = _run("weights", "fetch", "--url", server.url + path)
    assert result.exit_code == 0, result.output
    assert server.if_ranges[-2] == DATES[0]
    assert [r["range"] for r in server.requests][-2:] == [f"bytes={half}-", None]
    assert (store / "mine.pth").read_bytes() == second


def test_an_unchanged_file_resumes_with_if_range(server, store, agcn_files):
    first = agcn_files[JOINT_FILE]
    result = _cut_then_change(server, store, first, first, (V1, V1))
    assert result.exit_code == 0, result.output
    assert f"resumed at {len(first) // 2 / 1e6:.1f} MB" in result.stdout
    assert server.if_ranges[-1] == V1 and server.sent == [len(first) // 2, len(first) - len(first) // 2]
    assert (store / "mine.pth").read_bytes() == first


def test_without_a_version_or_a_digest_a_partial_download_is_not_resumed(server, store, agcn_files):
    first, second = _two_versions(agcn_files)
    result = _cut_then_change(server, store, first, second, (None, None))
    assert result.exit_code == 0, result.output
    assert server.requests[-1]["range"] is None  # nothing would catch a splice: from the start
    assert (store / "mine.pth").read_bytes() == second


# ---------------------------------------------------------------- what the store serves is hashed
def _edit_in_place(path) -> None:
    """Same size, one byte changed, mtime put back (a size+mtime memo cannot see it)."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_stored_file_edited_in_place_is_not_served_as_matching(server, store, monkeypatch, agcn_files):
    _serve(server, monkeypatch, agcn_files)
    assert _run("weights", "fetch", JOINT).exit_code == 0
    stored = store / JOINT_FILE
    _edit_in_place(stored)

    listing = _run("weights")
    assert listing.exit_code == 1 and f"{JOINT_FILE}: MISMATCH" in listing.stdout
    with pytest.raises(WeightsError, match=f"{JOINT_FILE}.*SHA-256 .* recorded"):
        resolve_checkpoint(JOINT, WeightsStore(store))
    again = _run("weights", "fetch", JOINT)
    assert again.exit_code == 0, again.output
    assert "already in the store" not in again.stdout
    assert stored.read_bytes() == agcn_files[JOINT_FILE]
    assert resolve_checkpoint(JOINT, WeightsStore(store)) == str(stored)


def test_an_unchecked_url_file_edited_in_place_is_fetched_again(server, store, agcn_files):
    server.files["/any/mine.pth"] = agcn_files[JOINT_FILE]
    assert _run("weights", "fetch", "--url", f"{server.url}/any/mine.pth").exit_code == 0
    _edit_in_place(store / "mine.pth")
    again = _run("weights", "fetch", "--url", f"{server.url}/any/mine.pth")
    assert again.exit_code == 0, again.output
    assert "already in the store" not in again.stdout
    assert (store / "mine.pth").read_bytes() == agcn_files[JOINT_FILE]


# ---------------------------------------------------------------- user files and the store's own
@pytest.mark.parametrize("name", ["manifest.json", "MANIFEST.json"])
def test_a_download_named_like_the_store_index_leaves_the_index_alone(server, store, monkeypatch, agcn_files,
                                                                      name):
    _serve(server, monkeypatch, agcn_files)
    assert _run("weights", "fetch", JOINT).exit_code == 0
    index = (store / "manifest.json").read_bytes()
    server.files[f"/any/{name}"] = b'{"files": {}}'
    result = _run("weights", "fetch", "--url", f"{server.url}/any/{name}")
    assert result.exit_code != 0
    assert f"{name}" in result.output and "the weights store's own index" in result.output
    assert "Traceback" not in result.output
    assert (store / "manifest.json").read_bytes() == index
    assert _nothing_in(store) == sorted([JOINT_FILE, "manifest.json"])


@pytest.mark.parametrize("as_url", [False, True])
def test_a_local_source_changed_since_the_partial_copy_is_copied_whole(store, agcn_files, tmp_path, as_url):
    from migue.pipeline.weights import resume

    first, second = _two_versions(agcn_files)
    source = tmp_path / "mirror" / "mine.pth"
    source.parent.mkdir()
    source.write_bytes(first)
    named = source.as_uri() if as_url else str(source)
    store.mkdir()
    part = store / ".mine.pth.part"
    part.write_bytes(first[: len(first) // 2])  # a copy killed halfway, with its version recorded
    resume.save(part, resume.from_file(named, source.stat()))
    kept = _run("weights", "fetch", "--url", named)  # unchanged: the rest is appended
    assert kept.exit_code == 0 and "resumed at" in kept.stdout
    assert (store / "mine.pth").read_bytes() == first

    (store / "mine.pth").unlink()
    part.write_bytes(first[: len(first) // 2])
    resume.save(part, resume.from_file(named, source.stat()))
    source.write_bytes(second)
    os.utime(source, ns=(1, 1))
    changed = _run("weights", "fetch", "--url", named)
    assert changed.exit_code == 0, changed.output
    assert "resumed at" not in changed.stdout
    assert (store / "mine.pth").read_bytes() == second
    assert _nothing_in(store) == ["manifest.json", "mine.pth"]

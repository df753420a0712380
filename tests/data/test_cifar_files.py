"""Downloading and reading the official CIFAR-10 archive (earlylin.data.cifar_files), against a local server.

A real ``cifar-10-python.tar.gz`` in the official layout is built here (from the offline npz where it
is found, else from small random batches) and served by a ``ThreadingHTTPServer`` on 127.0.0.1; no
network and no mocks. HOME and XDG_CACHE_HOME point into tmp_path, so nothing is written elsewhere.
"""

from __future__ import annotations

import io
import pickle
import socket
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from earlylin.data import cifar_files as files
from earlylin.data.cifar import CatHorse, load_cat_horse
from earlylin.errors import ConfigError, DataError
from tests.data.test_cifar import LABEL_NAMES, encode_rows, make_batch_dir

KEYS = ("x_train", "y_train", "x_test", "y_test", "mean", "std", "idx_train", "idx_test")
NAME = files.TARBALL_NAME


# ----------------------------------------------------------------------------------------------------
# Fixtures: a local HTTP server, an isolated environment, test archives


class Server:
    """Serves ``files`` (URL path → bytes) and records every requested path."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10  # seconds per socket operation: a stuck client cannot hang the tests

            def do_GET(self) -> None:
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # quiet test output
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str = f"/{NAME}") -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    try:
        yield srv
    finally:
        srv.close()
    assert not srv.thread.is_alive()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME and the XDG cache inside tmp_path; no EARLYLIN_* overrides; no proxy for 127.0.0.1."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    for var in (files.DATA_DIR_ENV, files.URL_ENV, files.MD5_ENV, files.NPZ_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return home


def tar_folder(folder: Path, out: Path) -> Path:
    """``out`` (a .tar.gz) holding ``folder``'s files as ``cifar-10-batches-py/<name>``, like the official one."""
    with tarfile.open(out, "w:gz", compresslevel=1) as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=f"{files.BATCH_DIR}/{path.name}")
    return out


def md5(path: Path) -> str:
    return files.file_digests(path, "md5")["md5"]


@pytest.fixture
def small_tarball(tmp_path: Path) -> Path:
    """A tiny archive in the official layout (random images of cats, horses and other classes)."""
    make_batch_dir(tmp_path / "src")
    (tmp_path / "archive").mkdir()
    return tar_folder(tmp_path / "src" / files.BATCH_DIR, tmp_path / "archive" / NAME)


@pytest.fixture(scope="module")
def real_npz() -> Path:
    try:
        return files.find_npz()
    except DataError as exc:
        pytest.skip(f"the real cifar10_cat_horse.npz was not found: {exc}")


@pytest.fixture(scope="module")
def real_tarball(real_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The npz's cats and horses at their official indices in full-size batches (other rows: blank, class 0)."""
    raw = files.read_npz(real_npz)
    out = tmp_path_factory.mktemp("real") / NAME

    def batch(idx: np.ndarray, labels: np.ndarray, x: np.ndarray) -> dict[bytes, object]:
        data, lab = np.zeros((10000, 3072), np.uint8), np.zeros(10000, np.int64)
        data[idx], lab[idx] = encode_rows(x), labels
        return {b"data": data, b"labels": lab.tolist()}

    with tarfile.open(out, "w:gz", compresslevel=1) as tar:

        def add(name: str, obj: object) -> None:
            blob = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
            info = tarfile.TarInfo(f"{files.BATCH_DIR}/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))

        add(files.META_FILE, {b"label_names": LABEL_NAMES})  # first, as in no particular official order
        for b in range(5):
            rows = raw.idx_train // 10000 == b
            add(f"data_batch_{b + 1}", batch(raw.idx_train[rows] % 10000, raw.labels_train[rows], raw.x_train[rows]))
        add(files.TEST_BATCH, batch(raw.idx_test, raw.labels_test, raw.x_test))
    yield out
    out.unlink()


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def assert_same(a: CatHorse, b: CatHorse) -> None:
    for key in KEYS:
        x, y = getattr(a, key), getattr(b, key)
        assert x.dtype == y.dtype and x.shape == y.shape, key
        np.testing.assert_array_equal(x, y, err_msg=key)


# ----------------------------------------------------------------------------------------------------
# Download


def test_download_checks_the_hash_and_gives_the_npz_arrays(
    tmp_path: Path, server: Server, real_npz: Path, real_tarball: Path
) -> None:
    server.files[f"/{NAME}"] = real_tarball.read_bytes()
    data_dir, known = tmp_path / "data", md5(real_tarball)
    kw = {"data_dir": data_dir, "url": server.url(), "known_hash": known, "search_npz": False, "cache_dir": None}
    got = load_cat_horse(download=True, quiet=True, **kw)
    assert server.requests == [f"/{NAME}"]
    assert all_files(data_dir) == [data_dir / NAME] and md5(data_dir / NAME) == known
    assert got.source == str(data_dir / NAME)
    assert_same(got, load_cat_horse(npz_path=real_npz, cache_dir=None))  # bit-identical to the npz

    again = load_cat_horse(download=True, **kw)  # found in the data dir: no second request
    assert server.requests == [f"/{NAME}"]
    assert_same(again, got)


def test_env_overrides_and_no_second_download(
    tmp_path: Path, server: Server, small_tarball: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$EARLYLIN_DATA_DIR, $EARLYLIN_CIFAR_URL and $EARLYLIN_CIFAR_MD5 stand in for the arguments."""
    server.files["/mirror/c.tgz"] = small_tarball.read_bytes()
    data_dir = tmp_path / "env-data"
    monkeypatch.setenv(files.DATA_DIR_ENV, str(data_dir))
    monkeypatch.setenv(files.URL_ENV, server.url("/mirror/c.tgz"))
    monkeypatch.setenv(files.MD5_ENV, md5(small_tarball))
    first = load_cat_horse(download=True, search_npz=False, cache_dir=None, quiet=True)
    second = load_cat_horse(download=True, search_npz=False, cache_dir=None)
    third = load_cat_horse(search_npz=False, cache_dir=None)
    assert server.requests == ["/mirror/c.tgz"]
    assert first.source == str(data_dir / NAME) and first.n_train == 14 and first.n_test == 5
    assert_same(first, second)
    assert_same(first, third)
    assert_same(first, load_cat_horse(cifar_root=tmp_path / "src", cache_dir=None))  # the folder it was made from


def test_corrupted_download_is_deleted_and_reported(tmp_path: Path, server: Server, small_tarball: Path) -> None:
    good = small_tarball.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    server.files[f"/{NAME}"] = bytes(bad)
    data_dir = tmp_path / "data"
    with pytest.raises(DataError) as info:
        load_cat_horse(download=True, data_dir=data_dir, url=server.url(), known_hash=md5(small_tarball),
                       search_npz=False, cache_dir=None, quiet=True)
    msg = str(info.value)
    assert "fails its checksum" in msg and server.url() in msg and str(data_dir) in msg and md5(small_tarball) in msg
    assert server.requests == [f"/{NAME}"]
    assert all_files(data_dir) == []  # neither the corrupt file nor a temporary one is left


def test_corrupted_local_archive_fails_its_checksum(tmp_path: Path, small_tarball: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / NAME).write_bytes(small_tarball.read_bytes()[:-100])  # truncated
    with pytest.raises(DataError, match=rf"{NAME} fails its checksum: md5 .*--download"):
        load_cat_horse(data_dir=data_dir, known_hash=md5(small_tarball), search_npz=False, cache_dir=None)
    with pytest.raises(DataError, match=rf"{NAME}.*truncated"):  # hash off: the reader still catches it
        load_cat_horse(data_dir=data_dir, known_hash=md5(data_dir / NAME), search_npz=False, cache_dir=None)


def test_unreachable_server_or_missing_file_names_the_url_and_data_dir(tmp_path: Path, server: Server) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/{NAME}"
    data_dir = tmp_path / "data"
    for url in (closed, server.url("/nothing-here.tar.gz")):
        with pytest.raises(DataError) as info:
            load_cat_horse(download=True, data_dir=data_dir, url=url, search_npz=False, cache_dir=None, quiet=True)
        msg = str(info.value)
        assert msg.startswith(f"downloading {url} into the data dir {data_dir} failed")
        assert not data_dir.exists() or all_files(data_dir) == []
    assert server.requests == ["/nothing-here.tar.gz"]


def test_nothing_local_without_download_is_one_clear_line(tmp_path: Path, server: Server) -> None:
    data_dir = tmp_path / "data"
    with pytest.raises(DataError) as info:
        load_cat_horse(data_dir=data_dir, url=server.url(), search_npz=False, cache_dir=None)
    msg = str(info.value)
    assert "\n" not in msg and str(data_dir) in msg and server.url() in msg
    assert "--download" in msg and "$EARLYLIN_CIFAR_NPZ" in msg and "--cifar-root" in msg
    assert server.requests == [] and not data_dir.exists()
    # With the npz search: every place searched is named (the search itself is tested in tests/data/test_cifar.py).
    places = files.npz_candidates(environ={files.NPZ_ENV: str(tmp_path / "x.npz")}, repo_root=tmp_path / "r",
                                  cwd=tmp_path / "c")
    msg = str(files.not_found_error(places, data_dir, files.CIFAR_URL))
    assert all(str(path) in msg for _, path in places) and files.CIFAR_MD5 in msg and "\n" not in msg


def test_defaults_are_the_official_archive_and_the_os_cache(isolated: Path) -> None:
    assert files.resolve_url(environ={}) == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert files.resolve_known_hash(environ={}) == "md5:c58f30108f718f92721af3b95e74349a"
    assert files.resolve_known_hash("ab" * 32, environ={}) == "sha256:" + "ab" * 32
    assert files.resolve_data_dir(environ={}) == isolated / ".cache" / "earlylin"  # pooch.os_cache, XDG
    assert files.resolve_data_dir(environ={files.DATA_DIR_ENV: "/x/y"}) == Path("/x/y")
    with pytest.raises(ConfigError, match="http"):
        files.resolve_url("ftp://example.org/c.tgz")
    with pytest.raises(ConfigError, match="known hash"):
        files.resolve_known_hash("md5:xyz")


# ----------------------------------------------------------------------------------------------------
# Local sources and the cache


def test_extracted_folder_in_the_data_dir_is_read_first(tmp_path: Path, small_tarball: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with tarfile.open(small_tarball) as tar:
        tar.extractall(data_dir, filter="data")
    (data_dir / NAME).write_bytes(b"not an archive")  # ignored: the extracted folder comes first
    got = load_cat_horse(data_dir=data_dir, search_npz=False, cache_dir=None)
    assert got.source == str(data_dir / files.BATCH_DIR)
    from_tar = load_cat_horse(cifar_root=small_tarball.parent, known_hash=md5(small_tarball), cache_dir=None)
    assert from_tar.source == str(small_tarball)
    assert_same(got, from_tar)


def test_cache_dir_none_writes_nothing_and_the_key_is_the_archive_checksum(
    tmp_path: Path, small_tarball: Path, isolated: Path
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / NAME).write_bytes(small_tarball.read_bytes())
    kw = {"data_dir": data_dir, "known_hash": md5(small_tarball), "search_npz": False}
    before = all_files(tmp_path)
    stamps = {p: p.stat().st_mtime_ns for p in before}
    load_cat_horse(cache_dir=None, **kw)
    assert all_files(tmp_path) == before and all(p.stat().st_mtime_ns == stamps[p] for p in before)
    assert not (isolated / ".cache").exists()

    cache = tmp_path / "cache"
    first = load_cat_horse(cache_dir=cache, **kw)
    sha = files.sha256_file(data_dir / NAME)
    assert all_files(cache) == [cache / f"cifar_cat_horse_pooled_{sha[:16]}.npz"] and not first.from_cache
    assert load_cat_horse(cache_dir=cache, **kw).from_cache
    assert not (isolated / ".cache").exists() and all_files(tmp_path) == sorted([*before, *all_files(cache)])

    make_batch_dir(tmp_path / "other", seed=1)  # another archive in its place: another key, never stale arrays
    other = tar_folder(tmp_path / "other" / files.BATCH_DIR, data_dir / NAME)
    changed = load_cat_horse(cache_dir=cache, **{**kw, "known_hash": md5(other)})
    assert not changed.from_cache and len(all_files(cache)) == 2
    assert not np.array_equal(changed.x_train, first.x_train)

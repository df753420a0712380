"""The CIFAR-10 cats-vs-horses loader of Fig 3 (docs/theory.md §5): readers, pooling, standardisation, integrity, cache.

Small batch folders are written here in the exact python-batch pickle format; the real
``cifar10_cat_horse.npz`` tests skip only when the file is not found.
"""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from earlylin.data import cifar, cifar_batches, cifar_files
from earlylin.data.cifar import CatHorse, DataError, load_cat_horse
from earlylin.errors import ConfigError
from tests.conftest import TOL, assert_close

LABEL_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
# Labels of the small batch folder: cats (3) and horses (7) among other classes.
SMALL_TRAIN_LABELS = [
    [3, 0, 7, 7, 5, 3],
    [1, 7, 3, 9],
    [3, 3, 2, 7, 8],
    [6, 7],
    [7, 4, 3, 3, 7, 0, 1],
]
SMALL_TEST_LABELS = [3, 1, 7, 7, 0, 3, 9, 3]


# ----------------------------------------------------------------------------------------------------
# Helpers: an independent writer of the CIFAR-10 python-batch format and an independent pooling


def encode_rows(images_hwc: np.ndarray) -> np.ndarray:
    """(N, 32, 32, 3) HWC → (N, 3072) rows R(1024) G(1024) B(1024), each plane row-major."""
    return np.concatenate([images_hwc[..., c].reshape(len(images_hwc), -1) for c in range(3)], axis=1)


def write_batch(
    path: Path, images_hwc: np.ndarray | None, labels: list[int], protocol: int = 2, data: np.ndarray | None = None
) -> None:
    """One batch as CIFAR-10 pickles it (protocol 2 like the official files); ``data`` overrides the rows."""
    if data is None:
        assert images_hwc is not None
        data = encode_rows(images_hwc)
    batch = {
        b"batch_label": path.name.encode(),
        b"labels": [int(v) for v in labels],
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
    }
    path.write_bytes(pickle.dumps(batch, protocol=protocol))


def write_meta(folder: Path, names: list[bytes] = LABEL_NAMES) -> None:
    meta = {b"label_names": names, b"num_cases_per_batch": 10000, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))


def make_batch_dir(
    root: Path,
    seed: int = 0,
    train_labels: list[list[int]] = SMALL_TRAIN_LABELS,
    test_labels: list[int] = SMALL_TEST_LABELS,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Write ``root/cifar-10-batches-py/`` with random images; returns the train batches' and test images."""
    folder = root / cifar_files.BATCH_DIR
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    train = []
    for i, labels in enumerate(train_labels, start=1):
        images = rng.integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
        write_batch(folder / f"data_batch_{i}", images, labels)
        train.append(images)
    test = rng.integers(0, 256, (len(test_labels), 32, 32, 3), dtype=np.uint8)
    write_batch(folder / "test_batch", test, test_labels)
    write_meta(folder)
    return train, [test]


def select_loop(batches: list[np.ndarray], labels: list[list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cats and horses of the concatenated batches, by an explicit loop."""
    xs, ys, idx, k = [], [], [], 0
    for images, labs in zip(batches, labels, strict=True):
        for image, lab in zip(images, labs, strict=True):
            if lab in (3, 7):
                xs.append(image)
                ys.append(lab)
                idx.append(k)
            k += 1
    return np.array(xs), np.array(ys), np.array(idx)


def pool_loop(images_hwc: np.ndarray, k: int = 4) -> np.ndarray:
    """4×4 average pooling by an explicit loop over blocks → (N, C, H/k, W/k)."""
    n, h, w, c = images_hwc.shape
    out = np.zeros((n, c, h // k, w // k))
    for i in range(n):
        for ch in range(c):
            for bi in range(h // k):
                for bj in range(w // k):
                    total = 0
                    for di in range(k):
                        for dj in range(k):
                            total += int(images_hwc[i, bi * k + di, bj * k + dj, ch])
                    out[i, ch, bi, bj] = total / (k * k)
    return out


# ----------------------------------------------------------------------------------------------------
# Batch reader, pooling, standardisation (small written folders)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_read_batch_decodes_chw_rows_to_hwc(tmp_path: Path, protocol: int) -> None:
    h, w = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    image = np.stack([h, 100 + w, 200 + (h + w) % 50], axis=-1).astype(np.uint8)  # R = row, G = 100+col, B = …
    images = np.stack([image, 255 - image])
    write_batch(tmp_path / "b", images, [3, 7], protocol=protocol)
    got, labels = cifar_batches.read_batch(tmp_path / "b")
    assert got.shape == (2, 32, 32, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(labels, [3, 7])
    # The raw row layout: pixel (row 2, col 5) of channel c sits at c·1024 + 2·32 + 5.
    row = encode_rows(images)[0]
    assert [row[c * 1024 + 2 * 32 + 5] for c in range(3)] == [2, 105, 207]
    assert list(got[0, 2, 5]) == [2, 105, 207]


def test_legacy_numpy_core_pickles_load_and_foreign_globals_are_refused(tmp_path: Path) -> None:
    """The official batches were pickled by numpy 1.x (numpy.core…); anything else global is refused."""
    images = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    blob = pickle.dumps({b"data": encode_rows(images), b"labels": [3, 7]}, protocol=2)
    assert b"numpy._core.multiarray" in blob
    (tmp_path / "legacy").write_bytes(blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    np.testing.assert_array_equal(cifar_batches.read_batch(tmp_path / "legacy")[0], images)

    (tmp_path / "evil").write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(DataError, match=r"evil.*not a CIFAR-10 python batch"):
        cifar_batches.read_batch(tmp_path / "evil")


def test_pool_images_matches_explicit_block_loop() -> None:
    images = np.random.default_rng(2).integers(0, 256, (3, 8, 12, 3), dtype=np.uint8)
    pooled = cifar.pool_images(images)
    assert pooled.shape == (3, 3, 2, 3) and pooled.dtype == np.float64
    np.testing.assert_array_equal(pooled, pool_loop(images))  # means of 16 integers are exact
    big = np.random.default_rng(3).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(cifar.pool_images(big), pool_loop(big))
    with pytest.raises(ConfigError, match="does not divide"):
        cifar.pool_images(images[:, :, :10])


def test_batch_folder_selection_pooling_standardisation(tmp_path: Path) -> None:
    train, test = make_batch_dir(tmp_path)
    data = load_cat_horse(cifar_root=tmp_path, cache_dir=None)

    x_tr, lab_tr, idx_tr = select_loop(train, SMALL_TRAIN_LABELS)
    x_te, lab_te, idx_te = select_loop(test, [SMALL_TEST_LABELS])
    assert data.n_train == len(lab_tr) == 14 and data.n_test == len(lab_te) == 5
    np.testing.assert_array_equal(data.idx_train, idx_tr)
    np.testing.assert_array_equal(data.idx_test, idx_te)
    np.testing.assert_array_equal(data.y_train, np.where(lab_tr == 7, 1.0, -1.0))
    np.testing.assert_array_equal(data.y_test, np.where(lab_te == 7, 1.0, -1.0))

    p_tr, p_te = pool_loop(x_tr), pool_loop(x_te)
    mean, std = p_tr.mean(axis=0), p_tr.std(axis=0)
    assert data.mean.shape == data.std.shape == (3, 8, 8)
    assert_close(data.mean, mean, "roundoff", atol=0)
    assert_close(data.std, std, "roundoff", atol=0)
    assert_close(data.x_train, (p_tr - mean) / std, "exact")
    assert_close(data.x_test, (p_te - mean) / std, "exact")
    assert data.x_train.shape == (14, 3, 8, 8) and data.x_train.dtype == np.float64
    assert np.mean(np.sum(data.flat("train") ** 2, axis=1)) == pytest.approx(192.0, rel=TOL["exact"])
    assert data.source == str(tmp_path / cifar_files.BATCH_DIR) and not data.from_cache


def test_statistics_come_from_the_training_split_only(tmp_path: Path) -> None:
    make_batch_dir(tmp_path / "a", seed=0)
    make_batch_dir(tmp_path / "b", seed=0)
    other_test = np.random.default_rng(99).integers(0, 256, (len(SMALL_TEST_LABELS), 32, 32, 3), dtype=np.uint8)
    write_batch(tmp_path / "b" / cifar_files.BATCH_DIR / "test_batch", other_test, SMALL_TEST_LABELS)
    a = load_cat_horse(cifar_root=tmp_path / "a", cache_dir=None)
    b = load_cat_horse(cifar_root=tmp_path / "b", cache_dir=None)
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.std, b.std)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_test, b.x_test)
    # cifar_root may also name the batch folder itself
    c = load_cat_horse(cifar_root=tmp_path / "a" / cifar_files.BATCH_DIR, cache_dir=None)
    np.testing.assert_array_equal(a.x_test, c.x_test)


def test_flat_is_a_chw_ordered_view_and_subsample_is_balanced(tmp_path: Path) -> None:
    make_batch_dir(tmp_path)
    data = load_cat_horse(cifar_root=tmp_path, cache_dir=None)
    flat = data.flat("test")
    assert flat.shape == (data.n_test, 192) and np.shares_memory(flat, data.x_test)
    c, h, w = 2, 5, 3
    np.testing.assert_array_equal(flat[:, c * 64 + h * 8 + w], data.x_test[:, c, h, w])
    with pytest.raises(ConfigError, match="split"):
        data.flat("valid")

    sub = data.subsample(n_train=8, n_test=4, seed=0)
    assert (sub.n_train, sub.n_test) == (8, 4)
    assert (sub.y_train == 1).sum() == 4 and (sub.y_test == 1).sum() == 2
    assert np.all(np.diff(sub.idx_train) > 0)  # original order kept
    rows = np.searchsorted(data.idx_train, sub.idx_train)
    np.testing.assert_array_equal(sub.x_train, data.x_train[rows])
    np.testing.assert_array_equal(sub.mean, data.mean)  # the full set's standardisation
    again = data.subsample(n_train=8, n_test=4, seed=0)
    np.testing.assert_array_equal(again.idx_train, sub.idx_train)
    assert "subsample" in sub.source
    with pytest.raises(ConfigError, match="n_train"):
        data.subsample(n_train=data.n_train + 1, n_test=1, seed=0)


# ----------------------------------------------------------------------------------------------------
# Integrity errors


def test_truncated_batch_names_the_file(tmp_path: Path) -> None:
    make_batch_dir(tmp_path)
    path = tmp_path / cifar_files.BATCH_DIR / "data_batch_3"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match=r"data_batch_3.*truncated"):
        load_cat_horse(cifar_root=tmp_path, cache_dir=None)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({b"data": np.zeros((2, 3000), np.uint8), b"labels": [3, 7]}, r"expected uint8 \(N, 3072\)"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [3, 7]}, r"float32.*expected uint8"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [3, 12]}, r"label 12 .*outside 0..9"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [3, -1]}, r"label -1 .*outside 0..9"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [3]}, r"'labels' has shape"),
        ({b"data": np.zeros((2, 3072), np.uint8)}, r"lacks the key\(s\) labels"),
        ([1, 2, 3], r"holds a list"),
    ],
)
def test_malformed_batch_names_the_file(tmp_path: Path, payload: object, match: str) -> None:
    make_batch_dir(tmp_path)
    path = tmp_path / cifar_files.BATCH_DIR / "test_batch"
    path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(DataError, match=f"test_batch.*{match}"):
        load_cat_horse(cifar_root=tmp_path, cache_dir=None)


def test_missing_batch_file_and_wrong_meta(tmp_path: Path) -> None:
    make_batch_dir(tmp_path)
    folder = tmp_path / cifar_files.BATCH_DIR
    (folder / "data_batch_5").unlink()
    with pytest.raises(DataError, match=r"lacks data_batch_5.*--cifar-root.*--download"):
        load_cat_horse(cifar_root=tmp_path, cache_dir=None)
    shutil.rmtree(folder)
    make_batch_dir(tmp_path)
    write_meta(folder, names=[f"class{i}".encode() for i in range(10)])
    with pytest.raises(DataError, match=r"batches.meta.*class 3 is 'class3', expected 'cat'"):
        load_cat_horse(cifar_root=tmp_path, cache_dir=None)


def small_npz(path: Path, **override: np.ndarray) -> Path:
    rng = np.random.default_rng(4)
    arrays = {
        "x_train": rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8),
        "y_train": np.array([3, 7, 7, 3], np.uint8),
        "idx_train": np.arange(4, dtype=np.int32),
        "x_test": rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8),
        "y_test": np.array([3, 7], np.uint8),
        "idx_test": np.arange(2, dtype=np.int32),
    }
    arrays.update(override)
    np.savez_compressed(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({}, r"train class counts are \{'cat': 2, 'horse': 2\}; expected 5000"),
        ({"x_train": np.zeros((4, 32, 32, 4), np.uint8)}, r"x_train is uint8 \(4, 32, 32, 4\)"),
        ({"x_test": np.zeros((2, 32, 32, 3), np.float32)}, r"x_test is float32"),
        ({"y_train": np.array([3, 7, 5, 3], np.uint8)}, r"y_train holds label 5 at row 2"),
        ({"y_test": np.array([3, 7, 7], np.uint8)}, r"y_test is uint8 \(3,\)"),
        ({"idx_test": None}, r"lacks the array 'idx_test'"),
    ],
)
def test_malformed_npz_names_the_file(tmp_path: Path, override: dict[str, np.ndarray], match: str) -> None:
    path = small_npz(tmp_path / "bad.npz", **override)
    with pytest.raises(DataError, match=f"bad.npz.*{match}"):
        cifar_files.read_npz(path, sha256=None)


def test_truncated_npz_and_checksum(tmp_path: Path) -> None:
    path = small_npz(tmp_path / "cut.npz")
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(DataError, match=r"cut.npz.*unreadable or truncated"):
        cifar_files.read_npz(path, sha256=None)
    with pytest.raises(DataError, match=r"cut.npz fails its checksum"):
        cifar_files.read_npz(path)
    with pytest.raises(DataError, match=r"cut.npz fails its checksum"):
        load_cat_horse(npz_path=path, cache_dir=None)


def test_nothing_found_lists_every_place_and_how_to_get_the_data(tmp_path: Path) -> None:
    repo, cwd = tmp_path / "clone", tmp_path / "work" / "dir"
    env = {cifar_files.NPZ_ENV: str(tmp_path / "nowhere.npz")}
    with pytest.raises(DataError) as info:
        cifar_files.find_npz(environ=env, repo_root=repo, cwd=cwd)
    msg = str(info.value)
    for place in (
        tmp_path / "nowhere.npz",
        tmp_path / "shared" / "data" / cifar_files.NPZ_NAME,
        cwd / "shared" / "data" / cifar_files.NPZ_NAME,
        cwd.parent / "shared" / "data" / cifar_files.NPZ_NAME,
    ):
        assert str(place) in msg
    assert "--cifar-root" in msg and "--download" in msg and "cifar-10-batches-py" in msg
    assert "\n" not in msg and cifar_files.CIFAR_URL in msg  # one line, with the official URL
    with pytest.raises(DataError, match=r"\$EARLYLIN_CIFAR_NPZ.*unset"):
        cifar_files.find_npz(environ={}, repo_root=repo, cwd=cwd)
    missing = tmp_path / "given.npz"
    with pytest.raises(DataError, match=f"{missing}.*npz_path argument"):
        load_cat_horse(npz_path=missing, cache_dir=None)


def test_search_order_env_then_beside_the_clone(tmp_path: Path) -> None:
    beside = small_npz_at(tmp_path / "shared" / "data" / cifar_files.NPZ_NAME)
    env_file = small_npz_at(tmp_path / "env.npz")
    repo = tmp_path / "clone"
    assert cifar_files.find_npz(environ={}, repo_root=repo, cwd=tmp_path / "x") == beside
    env = {cifar_files.NPZ_ENV: str(env_file)}
    assert cifar_files.find_npz(environ=env, repo_root=repo, cwd=tmp_path / "x") == env_file
    assert cifar_files.find_npz(environ={}, repo_root=tmp_path / "a" / "b", cwd=tmp_path / "w") == beside  # ../shared


def small_npz_at(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return small_npz(path)


# ----------------------------------------------------------------------------------------------------
# Cache


def test_cache_is_written_reused_and_rebuilt_when_corrupted(tmp_path: Path) -> None:
    make_batch_dir(tmp_path / "data")
    cache = tmp_path / "cache"
    first = load_cat_horse(cifar_root=tmp_path / "data", cache_dir=cache)
    files = list(cache.glob("cifar_cat_horse_pooled_*.npz"))
    assert not first.from_cache and len(files) == 1 and len(files[0].stem.split("_")[-1]) == 16
    assert not list(cache.glob(".*.tmp"))  # the atomic write left no temporary file

    second = load_cat_horse(cifar_root=tmp_path / "data", cache_dir=cache)
    assert second.from_cache
    for key in ("x_train", "y_train", "x_test", "y_test", "mean", "std", "idx_train", "idx_test"):
        np.testing.assert_array_equal(getattr(second, key), getattr(first, key))
    assert second.source == first.source

    files[0].write_bytes(files[0].read_bytes()[:1000])  # truncated cache file
    third = load_cat_horse(cifar_root=tmp_path / "data", cache_dir=cache)
    assert not third.from_cache
    np.testing.assert_array_equal(third.x_train, first.x_train)
    assert load_cat_horse(cifar_root=tmp_path / "data", cache_dir=cache).from_cache  # rewritten

    with np.load(files[0]) as z:
        arrays = dict(z)
    arrays["x_train"] = arrays["x_train"][:, :, :4]  # wrong shape, otherwise valid
    np.savez(files[0], **arrays)
    assert not load_cat_horse(cifar_root=tmp_path / "data", cache_dir=cache).from_cache

    # Changing a batch file changes the key: a new cache entry, never stale arrays.
    write_batch(tmp_path / "data" / cifar_files.BATCH_DIR / "test_batch", np.zeros((2, 32, 32, 3), np.uint8), [3, 7])
    changed = load_cat_horse(cifar_root=tmp_path / "data", cache_dir=cache)
    assert not changed.from_cache and changed.n_test == 2
    assert len(list(cache.glob("cifar_cat_horse_pooled_*.npz"))) == 2


# ----------------------------------------------------------------------------------------------------
# The real npz (shared/data/cifar10_cat_horse.npz)


@pytest.fixture(scope="module")
def real_npz() -> Path:
    try:
        return cifar_files.find_npz()
    except DataError as exc:
        pytest.skip(f"the real cifar10_cat_horse.npz was not found: {exc}")


@pytest.fixture(scope="module")
def real(real_npz: Path) -> CatHorse:
    return load_cat_horse(npz_path=real_npz, cache_dir=None)


@pytest.fixture(scope="module")
def real_raw(real_npz: Path) -> cifar_files.RawCatHorse:
    return cifar_files.read_npz(real_npz, sha256=None)


def test_real_npz_checksum_counts_and_shapes(real_npz: Path, real: CatHorse) -> None:
    assert cifar_files.sha256_file(real_npz) == cifar_files.NPZ_SHA256
    assert real.x_train.shape == (10000, 3, 8, 8) and real.x_test.shape == (2000, 3, 8, 8)
    assert real.x_train.dtype == real.x_test.dtype == np.float64
    assert real.flat("train").shape == (10000, 192) and real.d == 192
    assert (real.y_train == 1).sum() == 5000 and (real.y_train == -1).sum() == 5000
    assert (real.y_test == 1).sum() == 1000 and (real.y_test == -1).sum() == 1000
    assert real.source == str(real_npz)


def test_real_npz_standardised_with_train_statistics(real: CatHorse) -> None:
    x = real.flat("train")
    assert_close(x.mean(axis=0), 0.0, "dataset")
    assert_close(x.std(axis=0), 1.0, "dataset")
    assert np.mean(np.sum(x**2, axis=1)) == pytest.approx(192.0, abs=TOL["dataset_norm"])
    # The test split uses the training statistics: its means are close to, not exactly, 0.
    assert 0 < np.abs(real.flat("test").mean(axis=0)).max() < 0.2
    # README: the training per-channel means of the pooled set are those of CIFAR-10's cats and horses.
    assert np.all((real.mean > 50) & (real.mean < 200))


def test_real_npz_on_sphere(real: CatHorse) -> None:
    """--cifar-norm sphere: every image rescaled to ‖x‖² = d exactly, directions, labels and rows unchanged."""
    s = real.on_sphere()
    for split in cifar.SPLITS:
        x, z = real.flat(split), s.flat(split)
        norms = np.sum(z * z, axis=1)
        assert_close(norms, 192.0, "exact", atol=0)
        cos = np.sum(x * z, axis=1) / np.sqrt(np.sum(x * x, axis=1) * norms)
        assert_close(cos, 1.0, "exact", atol=0)
    # before: ‖x‖²/d spreads far from 1 (the reason for the option)
    q = np.sum(real.flat("train") ** 2, axis=1) / 192
    assert q.min() < 0.3 and q.max() > 3.0
    assert s.y_train is real.y_train and s.idx_test is real.idx_test and "sphere" in s.source


def test_real_npz_labels_match_the_readme(real: CatHorse, real_raw: cifar_files.RawCatHorse) -> None:
    assert set(np.unique(real.y_train)) == {-1.0, 1.0}
    np.testing.assert_array_equal(real.y_train, np.where(real_raw.labels_train == 7, 1.0, -1.0))
    first_horse = real.idx_train[np.flatnonzero(real.y_train == 1)[0]]
    first_cat = real.idx_train[np.flatnonzero(real.y_train == -1)[0]]
    assert (first_horse, first_cat) == (7, 9)
    assert real.idx_test[0] == 0 and real.y_test[0] == -1.0
    assert np.all(np.diff(real.idx_train) > 0) and np.all(np.diff(real.idx_test) > 0)


def test_real_npz_round_trip_through_the_batch_format(
    tmp_path: Path, real: CatHorse, real_raw: cifar_files.RawCatHorse
) -> None:
    """Write the npz's images at their official indices into full-size batches; the reader returns the same arrays."""
    folder = tmp_path / cifar_files.BATCH_DIR
    folder.mkdir()
    fill = 0  # other rows: class 0, blank images
    for b in range(5):
        data = np.zeros((10000, 3072), np.uint8)
        labels = np.full(10000, fill)
        rows = (real_raw.idx_train // 10000) == b
        data[real_raw.idx_train[rows] % 10000] = encode_rows(real_raw.x_train[rows])
        labels[real_raw.idx_train[rows] % 10000] = real_raw.labels_train[rows]
        write_batch(folder / f"data_batch_{b + 1}", None, labels.tolist(), protocol=pickle.HIGHEST_PROTOCOL, data=data)
    data = np.zeros((10000, 3072), np.uint8)
    labels = np.full(10000, fill)
    data[real_raw.idx_test] = encode_rows(real_raw.x_test)
    labels[real_raw.idx_test] = real_raw.labels_test
    write_batch(folder / "test_batch", None, labels.tolist(), protocol=pickle.HIGHEST_PROTOCOL, data=data)
    write_meta(folder)

    from_batches = load_cat_horse(cifar_root=tmp_path, cache_dir=None)
    for key in ("x_train", "y_train", "x_test", "y_test", "mean", "std", "idx_train", "idx_test"):
        np.testing.assert_array_equal(getattr(from_batches, key), getattr(real, key), err_msg=key)
    shutil.rmtree(folder)  # ~150 MB; pytest keeps the last runs' tmp_path


def test_real_npz_corrupted_copy_fails_its_checksum(tmp_path: Path, real_npz: Path) -> None:
    copy = tmp_path / "copy" / cifar_files.NPZ_NAME
    copy.parent.mkdir()
    shutil.copyfile(real_npz, copy)
    with open(copy, "r+b") as fh:
        fh.seek(os.path.getsize(copy) // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(DataError, match=f"{copy} fails its checksum"):
        load_cat_horse(npz_path=copy, cache_dir=None)
    with pytest.raises(DataError, match=f"{copy} fails its checksum"):
        cifar_files.read_npz(copy)


def test_real_npz_cache(tmp_path: Path, real_npz: Path, real: CatHorse) -> None:
    first = load_cat_horse(npz_path=real_npz, cache_dir=tmp_path)
    path = tmp_path / f"cifar_cat_horse_pooled_{cifar_files.NPZ_SHA256[:16]}.npz"
    assert path.is_file() and not first.from_cache
    second = load_cat_horse(npz_path=real_npz, cache_dir=tmp_path)
    assert second.from_cache
    np.testing.assert_array_equal(second.x_train, real.x_train)
    np.testing.assert_array_equal(second.y_test, real.y_test)

"""CIFAR-10 with ten classes: the offline fixture read as its README says, and a cross-entropy SGD run of the
command (docs/theory.md §3.3)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from earlylin.cli import verify
from earlylin.data import cifar_files
from earlylin.data.cifar import pool_images
from earlylin.data.cifar_classes import default_npz, load_classes

pytestmark = pytest.mark.skipif(not default_npz().is_file(), reason="the ten-class npz is not beside the repository")


def test_the_fixture_holds_the_readmes_classes_and_its_cats_and_horses_are_the_pairs():
    """Class counts as the fixture's README gives them; its cats and horses pool to exactly the rows of the
    cats-vs-horses file with the same official index (an independent file of the same images)."""
    data = load_classes()
    assert data.y_train.sum(0).tolist() == [1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981]
    assert data.y_test.sum(0).tolist() == [196, 198, 195, 199, 198, 185, 216, 193, 217, 203]
    assert np.array_equal(data.y_train.argmax(1), data.labels_train) and data.x_train.shape == (10_000, 3, 8, 8)
    assert abs(float(data.flat("train").mean())) < 1e-12  # standardised on its own training set
    two = load_classes((7, 3))
    assert two.y_train[:, 0].sum() == 1001 and np.array_equal(two.y_train[:, 0] == 1, two.labels_train == 7)
    with np.load(default_npz()) as z:
        ten = {k: z[k] for k in ("x_train", "y_train", "idx_train")}
    raw = cifar_files.read_npz(default_npz().with_name(cifar_files.NPZ_NAME))
    pos = {int(i): r for r, i in enumerate(raw.idx_train)}
    keep = np.isin(ten["y_train"], (3, 7))
    rows = [pos[int(i)] for i in ten["idx_train"][keep]]
    assert len(rows) == 2017 and np.array_equal(pool_images(ten["x_train"][keep]), pool_images(raw.x_train[rows]))


def test_the_ten_class_cross_entropy_sgd_command(tmp_path):
    """The command of the issue at --quick size: a record with ten outputs per point, the run's loss, optimizer and
    batches recorded, the label agreement, and the figure."""
    code = verify.main(["--dataset", "cifar", "--classes", "10", "--loss", "cross_entropy", "--optimizer", "sgd",
                        "--batch-size", "128", "--quick", "--no-cache", "--quiet", "--device", "cpu", "--out",
                        str(tmp_path)])
    assert code == 0
    run = json.loads((tmp_path / "record.json").read_text(encoding="utf-8"))["runs"][0]
    c, s, m = run["config"], run["summary"], run["per_seed"]["0"]
    assert c["classes"] == list(range(10)) and (c["loss"], c["optimizer"], c["batch_size"]) == ("cross_entropy",
                                                                                                 "sgd", 128)
    assert np.array(m["logits_net"]).shape == (len(m["steps"]), 5, 10) and len(m["test_mse_per_output"][-1]) == 10
    assert 0.0 < s["test_label_agreement"] <= 1.0 and s["loss_spikes_checked"] is False
    assert m["test_loss_net"][0] == pytest.approx(np.log(10.0))  # f₀ ≡ 0: the uniform softmax
    assert (tmp_path / "verify.png").stat().st_size > 10_000


def test_the_official_batch_format_gives_the_fixtures_arrays(tmp_path):
    """The fixture's images written at their official places into full-size python batches (data_batch_1 is its
    training set; test_batch's first 2,000 rows its test set; every other row a blank airplane): reading the batches
    with ``cifar_root`` and classes 1–9 gives the arrays the fixture gives."""
    import pickle
    import shutil

    from tests.data.test_cifar import encode_rows, write_batch, write_meta

    with np.load(default_npz()) as z:
        raw = {k: z[k] for k in z.files}
    folder = tmp_path / cifar_files.BATCH_DIR
    folder.mkdir()
    blank = np.zeros((10000, 3072), np.uint8)
    for b in range(1, 6):
        data, labels = (encode_rows(raw["x_train"]), raw["y_train"]) if b == 1 else (blank, np.zeros(10000, int))
        write_batch(folder / f"data_batch_{b}", None, labels.tolist(), protocol=pickle.HIGHEST_PROTOCOL, data=data)
    data, labels = blank.copy(), np.zeros(10000, int)
    data[:2000], labels[:2000] = encode_rows(raw["x_test"]), raw["y_test"]
    write_batch(folder / "test_batch", None, labels.tolist(), protocol=pickle.HIGHEST_PROTOCOL, data=data)
    write_meta(folder)
    classes = tuple(range(1, 10))
    got, want = load_classes(classes, cifar_root=tmp_path), load_classes(classes)
    for key in ("x_train", "y_train", "labels_train", "idx_train", "x_test", "y_test", "labels_test", "idx_test"):
        np.testing.assert_array_equal(getattr(got, key), getattr(want, key), err_msg=key)
    shutil.rmtree(folder)

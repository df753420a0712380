"""Behaviour unchanged: each family's ``--quick`` record equals the golden record made before the
library refactor (tests/golden/, made by tests/golden/make_golden.sh at commit e105272) to 1e-12."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from earlylin import verify

GOLDEN = Path(__file__).parent / "golden"
NAMES = sorted(p.stem for p in GOLDEN.glob("*.json"))
VOLATILE = {"wall_time_s", "cached"}


def _argv(golden: dict, out: Path) -> list[str]:
    argv = list(golden["argv"])
    i = argv.index("--out")
    # the golden records were made with the whole-matrix step; the faster default (--step auto) sums in
    # another fp32 order (tests/test_speed_paths.py checks it against this one)
    step = [] if "--dataset" in argv else ["--step", "reference"]
    return [*argv[:i], *argv[i + 2:], *step, "--out", str(out)]


def _assert_same(new, old, path: str) -> None:
    if isinstance(old, dict):
        for k, v in old.items():
            if k not in VOLATILE:
                assert k in new, f"{path}.{k} missing"
                _assert_same(new[k], v, f"{path}.{k}")
    elif isinstance(old, list) and old and isinstance(old[0], dict | list):
        assert len(new) == len(old), path
        for i, (a, b) in enumerate(zip(new, old, strict=True)):
            _assert_same(a, b, f"{path}[{i}]")
    elif isinstance(old, str) or old is None or isinstance(old, bool):
        assert new == old, f"{path}: {new!r} != {old!r}"
    else:
        a = np.array(new, dtype=float)
        b = np.array(old, dtype=float)
        assert a.shape == b.shape, path
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12, equal_nan=True, err_msg=path)


@pytest.mark.parametrize("name", NAMES)
def test_quick_record_equals_golden(name, tmp_path):
    golden = json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))
    assert verify.main(_argv(golden, tmp_path)) == 0
    record = json.loads((tmp_path / "record.json").read_text(encoding="utf-8"))
    assert len(record["runs"]) == len(golden["runs"])
    for new, old in zip(record["runs"], golden["runs"], strict=True):
        _assert_same(new["per_seed"], old["per_seed"], "per_seed")
        _assert_same(new["summary"], old["summary"], "summary")
        for key, value in old["config"].items():
            assert new["config"][key] == value, key

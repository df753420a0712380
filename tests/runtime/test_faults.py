"""Trustworthy runs: divergence reports, atomic records under SIGKILL, cache integrity and resume,
determinism on CPU."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from earlylin.config import TwoLayerConfig
from earlylin.errors import DivergenceError
from earlylin.experiments import TwoLayer
from earlylin.experiments import run as run_experiment
from earlylin.experiments.train import record_schedule, run_gd
from earlylin.runtime.records import Cache, write_json_atomic
from tests.conftest import ROOT, TOL


def run_two_layer(cfg: TwoLayerConfig, cache: Cache | None = None) -> dict:
    return run_experiment(TwoLayer(cfg), cache).record


TINY = TwoLayerConfig(d=6, n=60, n_test=20, width=16, steps=40, seeds=(0, 1), dtype="float64", device="cpu")


def _quadratic(curvatures: list[float]):
    """Real GD on L_k(p) = ½ a_k p_k² (one problem per seed): it diverges iff η a_k > 2."""
    a = torch.tensor(curvatures, dtype=torch.float64)

    def step(params):
        (p,) = params
        return 0.5 * a * p * p, p.unsqueeze(-1), [a * p]

    return step


def test_divergence_of_every_seed_names_step_seed_and_lr():
    params = [torch.ones(2, dtype=torch.float64)]
    with pytest.raises(DivergenceError, match=r"every seed.*\{7: \d+, 8: \d+\}.*learning rate.*smaller lr="):
        run_gd(_quadratic([5.0, 6.0]), params, [1.0], 2000, record_schedule(2000), lambda *a: None, seeds=[7, 8])


def test_partial_divergence_reports_the_bad_seed_and_keeps_the_others():
    params = [torch.ones(2, dtype=torch.float64)]
    seen = []
    bad = run_gd(_quadratic([0.5, 5.0]), params, [1.0], 200, [0, 100, 200], lambda t, f, p: seen.append(t),
                 seeds=[3, 4]).diverged([3, 4])
    assert list(bad) == [4] and 0 < bad[4] <= 10  # |1 − 5|^t passes 1e4× its start within a few steps
    assert seen == [0, 100, 200]
    assert abs(float(params[0][0])) < TOL["iterated"]  # the stable seed converged


def test_nan_loss_is_caught_at_its_step():
    """A loss that turns NaN (not just large) is reported at the step where it happened."""

    def step(params):
        (p,) = params
        loss = torch.where(p > 5.5, torch.tensor(float("nan"), dtype=p.dtype), p.clone())
        return loss, p.unsqueeze(-1), [-torch.ones_like(p)]

    with pytest.raises(DivergenceError, match=r"\{0: 5\}"):
        run_gd(step, [torch.ones(1, dtype=torch.float64)], [1.0], 100, [0, 100], lambda *a: None, seeds=[0])


WRITER = """
import sys, itertools
from earlylin.runtime.records import write_json_atomic
path = sys.argv[1]
payload = list(range(200_000))
print("ready", flush=True)
for i in itertools.count():
    write_json_atomic(path, {"i": i, "payload": payload, "end": True})
"""


def test_sigkill_never_leaves_a_half_written_record(tmp_path):
    """Kill a process that rewrites a 1.4 MB record in a loop, 8 times at random moments: the file is
    always absent or complete JSON, and no temporary file is mistaken for it."""
    path = tmp_path / "record.json"
    for k in range(8):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(0.05 + 0.11 * k)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if path.exists():
            rec = json.loads(path.read_text())
            assert rec["end"] is True and len(rec["payload"]) == 200_000
    assert path.exists()


def test_killed_verify_run_leaves_previous_record(tmp_path):
    """A finished record survives a second run of the CLI killed mid-training."""
    out = tmp_path / "out"
    base = [sys.executable, "-m", "earlylin.verify", "--d", "8", "--n", "200", "--n-test", "50", "--width", "32",
            "--no-cache", "--no-plot", "--device", "cpu", "--out", str(out)]
    subprocess.run([*base, "--steps", "20", "--quiet"], check=True, capture_output=True)
    first = (out / "record.json").read_text()
    proc = subprocess.Popen([*base, "--steps", "10000000"], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:  # wait until training is under way
        if "running d=" in line:
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "record.json").read_text() == first
    assert not [p for p in out.iterdir() if p.name != "record.json"]  # no stray temporary files


def test_cache_resumes_and_rejects_corruption(tmp_path):
    cache = Cache(tmp_path)
    first = run_two_layer(TINY, cache)
    assert not any(m["cached"] for m in first["per_seed"].values())
    # a sweep extended by one seed recomputes only that seed
    more = run_two_layer(TINY.with_(seeds=(0, 1, 2)), cache)
    assert [more["per_seed"][s]["cached"] for s in ("0", "1", "2")] == [True, True, False]
    assert more["per_seed"]["0"]["test_mse"] == first["per_seed"]["0"]["test_mse"]
    # corrupt two entries: bad JSON, and a valid JSON whose checksum no longer matches
    files = sorted(Path(tmp_path).rglob("*.json"))
    assert len(files) == 3
    files[0].write_text("{not json")
    entry = json.loads(files[1].read_text())
    entry["result"]["metrics"]["test_mse"][1] = 123.0
    files[1].write_text(json.dumps(entry))
    again = run_two_layer(TINY.with_(seeds=(0, 1, 2)), cache)
    assert sum(not m["cached"] for m in again["per_seed"].values()) == 2
    for s in ("0", "1", "2"):  # recomputed in a different batch: equal to rounding
        a, b = again["per_seed"][s]["test_mse"], more["per_seed"][s]["test_mse"]
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < TOL["exact"]


def test_cache_key_covers_the_config(tmp_path):
    cache = Cache(tmp_path)
    run_two_layer(TINY, cache)
    other = run_two_layer(TINY.with_(lr=0.5), cache)
    assert not any(m["cached"] for m in other["per_seed"].values())


def test_same_seed_same_record_bit_for_bit(tmp_path):
    """Same command, same seed, CPU: identical records except the wall-clock fields."""
    recs = []
    out = tmp_path / "out"
    for _ in range(2):
        subprocess.run([sys.executable, "-m", "earlylin.verify", "--d", "8", "--n", "200", "--n-test", "50",
                        "--width", "32", "--steps", "50", "--seeds", "0", "1", "--no-cache", "--no-plot", "--quiet",
                        "--device", "cpu", "--out", str(out)], check=True, capture_output=True)
        recs.append(json.loads((out / "record.json").read_text()))

    def strip(obj):
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if "wall_time" not in k}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj

    assert strip(recs[0]) == strip(recs[1])
    write_json_atomic(tmp_path / "a.json", strip(recs[0]))
    write_json_atomic(tmp_path / "b.json", strip(recs[1]))
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_batch_of_seeds_equals_seeds_run_alone():
    """Seeds batched together give the same metrics as each seed alone (float64, to rounding)."""
    together = run_two_layer(TINY)
    for s in (0, 1):
        alone = run_two_layer(TINY.with_(seeds=(s,)))
        a, b = alone["per_seed"][str(s)]["test_mse"], together["per_seed"][str(s)]["test_mse"]
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < TOL["exact"]


FIGURES_DRIVER = """
import json, sys
sys.path.insert(0, {tests!r})
from tests.figures.test_command import TINY
from earlylin import studies
from earlylin.cli import figures
from earlylin.studies import presets
presets.STUDY_SPECS["quick"] = TINY
real = studies._run
def logged(study, *a, **k):
    with open({log!r}, "a") as fh:
        fh.write(study + "\\n")
    if study == "escape" and {slow!r}:
        import time
        time.sleep(600)  # killed here
    return real(study, *a, **k)
studies._run = logged
sys.exit(figures.main(["--quick", "--device", "cpu", "--quiet", "--out", {out!r}, "--cache-dir", {cache!r},
                       "--only", "fig1a", "fig2", "escape"]))
"""


def test_killed_figures_run_resumes_with_only_what_is_missing(tmp_path):
    """SIGKILL the figures command while its third study runs; the re-run recomputes that study only."""
    tests = str(ROOT)
    out, cache, log = tmp_path / "out", tmp_path / "cache", tmp_path / "ran.log"

    def driver(slow: bool) -> str:
        return FIGURES_DRIVER.format(tests=tests, log=str(log), slow=slow, out=str(out), cache=str(cache))

    proc = subprocess.Popen([sys.executable, "-c", driver(True)], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and "escape" in log.read_text()):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert log.read_text().split() == ["fig1", "fig2", "escape"]
    assert not (out / "records" / "escape.json").exists() and (out / "records" / "fig2.json").exists()
    assert not [p for p in (out / "records").iterdir() if p.suffix != ".json"]  # no stray temporary files
    log.unlink()
    done = subprocess.run([sys.executable, "-c", driver(False)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert log.read_text().split() == ["escape"]  # fig1 and fig2 came from the cache
    assert all((out / f"{fid}.png").exists() for fid in ("fig1a", "fig2", "escape"))

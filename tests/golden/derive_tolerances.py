"""Derive the per-metric tolerances of tests/test_golden.py from the measured fp32-vs-float64 spread.

Usage (from the repository; about 20 minutes on a 2-core CPU, most of it the CIFAR CNN in float64):
    python tests/golden/derive_tolerances.py                     # every golden record
    python tests/golden/derive_tolerances.py cnn1d               # some of them; the others keep their entry
    python tests/golden/derive_tolerances.py --records DIR       # also keep the runs' records in DIR
    python tests/golden/derive_tolerances.py --from-records DIR  # no runs: the records kept in DIR

Each golden record (tests/golden/<name>.json, made by make_golden.sh) is recomputed twice on this
machine with the command the test runs: once as recorded (the network in float32) and once with
``--dtype float64``. A metric is a key of ``per_seed`` (over every seed and recorded step) or of
``summary``. For each metric:

    spread    = max over its entries of |fp32 − float64|
    scale     = max over its entries of |float64|
    tolerance = max(FACTOR × spread, FLOOR_REL × scale, quantum, CONSTANT_ROUNDOFF for the constants)

- The spread bounds how far an fp32 run is from exact arithmetic: float64 is exact to ~1e-16, far
  below the fp32 errors (~1e-7 relative per operation, grown over the steps of gradient descent). Two
  fp32 runs on different machines (another CPU, BLAS kernel, vector width or thread split) each lie
  within about the spread of float64, so they differ from each other by at most about 2 × spread.
  FACTOR = 10 covers that 2 and leaves 5× for rounding orders whose errors are larger than this
  machine's (e.g. no FMA, other block sizes in the sums).
- One envelope per metric, not per entry: the entries of a metric come from one perturbed trajectory,
  and where fp32 and float64 happen to agree at one step another machine does not; entries at rounding
  level (e.g. MSE(net, lin) ≈ 1e-15 at step 0) would otherwise need a relative precision no machine has.
- A summary value (SUMMARY_SOURCES) is a seed mean of the early-window maximum or of the last step of a
  per_seed metric, and a mean or a maximum moves by at most the largest move of its entries: its spread
  is at least that metric's. Alone, its own fp32-vs-float64 difference is one sample of the rounding and
  can be small by chance (seen: 1.6e-9 relative for the 1D CNN's final test loss, whose per-step spread
  is 3.8e-8, and which differs between this machine and the golden's by 1e-8).
- The floor is for metrics that do not depend on the network's dtype (the linear models, always float64;
  the data; the steps): their spread is 0, and across machines float64 BLAS/LAPACK and numpy's vector
  code differ by a few ulp (~1e-15 relative), grown by the eigendecompositions and least-squares fits
  of the linear models. FLOOR_REL = 1e-10 of the metric's scale leaves a margin of ~1e4 over that and
  stays far below the fp32 tolerances (≳ 1e-8 relative).
- The roundoff term is for the constants (summary.constants.*): quadrature sums of O(1) terms in float64, some
  zero by symmetry (E[gφ′] for erf), where FLOOR_REL × scale would be 0. Across machines such a sum moves by a
  few ulp of its terms (seen: E[gφ′] = 6.7e-18 on a Zen 4 EPYC against 0.0 in the golden): CONSTANT_ROUNDOFF =
  1e-15 absolute.
- The quantum is for metrics that count points. The network's error rates and μ (COUNTING; μ is the
  mutual-information metric, a function of the 2×2×2 table of the signs of net, linear model and label)
  move only where a point's output changes sign. At each recorded step and seed, the points that may do
  so on another machine are those whose fp32 output lies within FACTOR × that step's output spread
  (max over the points of |fp32 − float64|) of 0, and at least one: an error rate may move by that many
  points (k/n), μ by k times its largest change from one point (:func:`mu_step`). These tolerances are
  per entry (``tolerance_per_step``): at step 0 of a two-layer net the outputs are rounding noise around
  0 and every point counts, later only a few do. A sign that differs between the two runs belongs to such
  a point, so they cover the spread. The linear model's error rate (float64) gets one point.
- NOT_REPRODUCIBLE names the metrics of a golden that have no machine-independent value, and why; they
  get no tolerance and the test checks only their shape.

The result is written to tests/golden/tolerances.json with, per golden, the commands, this machine, the
golden file's SHA-256 (the test refuses a golden changed since), and per metric the spread, the scale,
the quantum, the tolerance, which term set it, golden_diff = max |this machine's fp32 run − the golden|
(a sample of the difference between two machines) and golden_ratio, that difference over the tolerance.
The script stops, writing nothing for that golden, if the golden is not within the tolerance of this
machine's fp32 run: the golden would then not be the behaviour of this code.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import math
import os
import platform
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

GOLDEN = Path(__file__).resolve().parent
TOLERANCES = GOLDEN / "tolerances.json"
FACTOR = 10.0
FLOOR_REL = 1e-10
CONSTANT_ROUNDOFF = 1e-15  # absolute, for summary.constants.* (quadrature sums of O(1) terms; see above)
VOLATILE = {"wall_time_s", "cached"}
SECTIONS = ("per_seed", "summary")
# summary key → the per_seed metric it is a seed mean of (of its early-window maximum or its last step);
# a mean or a maximum moves by at most the largest move of its entries (experiments/result.py: summarise)
SUMMARY_SOURCES = {
    "max_test_mse_early": "test_mse", "max_test_mse_early_per_seed": "test_mse",
    "max_rel_test_mse_early": "test_rel_mse", "max_rel_test_mse_early_per_seed": "test_rel_mse",
    "max_test_mse_stripped_early": "test_mse_stripped", "max_test_mse_fw_early": "test_mse_fw",
    "max_test_mse_ntk_lin_early": "test_mse_ntk_lin", "max_rel_test_mse_ntk_inf_early": "test_rel_mse_ntk_inf",
    "test_loss_net": "test_loss_net", "test_loss_lin": "test_loss_lin", "test_loss_stripped": "test_loss_stripped",
    "initial_mismatch": "test_rel_mse", "initial_mismatch_per_seed": "test_rel_mse",
    "rel_test_mse_at_maxima_end": "test_rel_mse", "regime_threshold": "test_rel_mse",
}
# metrics that count the signs of the network's outputs: a tolerance per recorded step (counting_quanta)
COUNTING = ("per_seed.train_err_net", "per_seed.test_err_net", "per_seed.mu")
# Metrics of a golden that have no machine-independent value, and why: the test checks only that they are
# there, with the golden's shape and None entries (tests/test_golden.py checks that the reason still holds).
NOT_REPRODUCIBLE = {
    "cifar_cnn": {
        "metrics": ["per_seed.vlin_rank", "per_seed.test_res_par_net", "per_seed.test_res_perp_net",
                    "per_seed.test_res_par_lin", "per_seed.test_res_perp_lin"],
        "reason": "V_lin = span(Ψ_test) keeps the singular directions above 1e-10 of the largest "
        "(earlylin.experiments.comparison.VlinSplit). For the CNN with erf (odd: E φ = 0) the norm coefficients "
        "A, c, D, E of "
        "the linear model are zero, computed as round-off (|A| ≈ 6e-20, |E| ≈ 1e-21), and "
        "earlylin.ntk.linearise._norm_block keeps the square roots of E's round-off eigenvalues: 64 feature "
        "columns of size ≈ 3e-11, whose singular values (2e-10 to 7e-11 of the largest) straddle the threshold. "
        "The rank of V_lin and the split of the residuals onto it then depend on how LAPACK rounds: rank 197 here "
        "and in the golden, 196 with OpenBLAS's Sandybridge kernels, and the golden and this machine differ by "
        "2.6e-3 (0.4–0.8%) in test_res_*. The linear model's outputs do not move (those columns add ≈ 1e-21 "
        "to its kernel). The other goldens' features have no such columns: below their rank the singular "
        "values are at 1e-16 of the largest, and their split is reproducible.",
    },
}


def golden_names() -> list[str]:
    return sorted(p.stem for p in GOLDEN.glob("*.json") if p != TOLERANCES)


def load_golden(name: str) -> dict[str, Any]:
    return json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))


def golden_sha256(name: str) -> str:
    return hashlib.sha256((GOLDEN / f"{name}.json").read_bytes()).hexdigest()


def golden_argv(golden: dict[str, Any], out: Path, *extra: str) -> list[str]:
    """The golden's command with ``--out out`` (and ``extra`` flags): what tests/test_golden.py runs."""
    argv = list(golden["argv"])
    i = argv.index("--out")
    # the golden records were made with the whole-matrix step; the faster default (--step auto) sums in
    # another fp32 order (tests/nets/test_speed_paths.py checks it against this one)
    step = [] if "--dataset" in argv or "--step" in argv else ["--step", "reference"]
    return [*argv[:i], *argv[i + 2:], *step, *extra, "--out", str(out)]


def metric_name(section: str, path: tuple[str, ...]) -> str:
    """``per_seed.<key>`` (every seed shares one tolerance) or ``summary.<key>[.<key>…]``."""
    return ".".join((section, *(path[1:] if section == "per_seed" else path)))


def is_numeric(value: Any) -> bool:
    """A number, or a (nested) list of numbers and None; strings, bools and None alone are compared exactly."""
    if isinstance(value, list):
        return bool(value) and all(v is None or is_numeric(v) for v in value) and any(v is not None for v in value)
    return isinstance(value, int | float) and not isinstance(value, bool)


def numeric_leaves(obj: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, value) of every numeric leaf of a nested dict (lists of dicts indexed by position)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k not in VOLATILE:
                yield from numeric_leaves(v, (*path, str(k)))
    elif isinstance(obj, list) and obj and all(isinstance(v, dict) for v in obj):
        for i, v in enumerate(obj):
            yield from numeric_leaves(v, (*path, str(i)))
    elif is_numeric(obj):
        yield path, obj


def as_array(value: Any) -> np.ndarray:
    return np.array(value, dtype=float)  # None → NaN


def metrics(record: dict[str, Any]) -> dict[str, np.ndarray]:
    """Every numeric metric of a record's runs: name → its entries (all seeds and runs), flattened."""
    out: dict[str, list[np.ndarray]] = {}
    for run in record["runs"]:
        for section in SECTIONS:
            for path, value in numeric_leaves(run[section]):
                out.setdefault(metric_name(section, path), []).append(as_array(value).ravel())
    return {k: np.concatenate(v) for k, v in out.items()}


def quantum(name: str, config: dict[str, Any]) -> float:
    """One point (1/n or 1/n_test) for an error rate not in COUNTING (the linear model's: float64); else 0."""
    key = name.rsplit(".", 1)[-1]
    if "_err_" in key:
        return 1.0 / config["n_test" if key.startswith("test_") else "n"]
    return 0.0


def _mu(p: Any) -> Any:
    from earlylin.experiments.mu import cmi_from_table, mi_from_table

    return mi_from_table(p.sum(-1)) - cmi_from_table(p)  # p: (..., F, Y, L), as in earlylin.experiments.mu.mu_terms


def mu_step(f_net: Any, f_lin: Any, y: Any) -> np.ndarray:
    """Per seed, the largest change of μ = I(F; Y) − I(F; Y | L) when the sign F of one point's network
    output flips: 1/n of the 2×2×2 table moves to the cell across the F axis (0 for a non-finite seed)."""
    import torch

    from earlylin.experiments.mu import joint_table

    tf, tl, ty = (torch.as_tensor(v).double().reshape(-1, torch.as_tensor(v).shape[-1]) for v in (f_net, f_lin, y))
    p = joint_table(tf, ty, tl)
    base, n = _mu(p), tf.shape[-1]
    worst = torch.zeros(tf.shape[0], dtype=torch.float64)
    for f, yy, lab in np.ndindex(2, 2, 2):
        moved = p.clone()
        moved[:, f, yy, lab] -= 1.0 / n
        moved[:, 1 - f, yy, lab] += 1.0 / n
        change = torch.where(p[:, f, yy, lab] > 0, (_mu(moved) - base).abs(), 0.0)  # only where a point is
        worst = torch.maximum(worst, change)
    ok = torch.isfinite(tf).all(-1) & torch.isfinite(tl).all(-1)
    return torch.where(ok, worst, 0.0).numpy()


def near_zero(f32: np.ndarray, f64: np.ndarray) -> np.ndarray:
    """Per recorded step and seed (arrays (steps, seeds, points)): the points whose fp32 output lies within
    FACTOR × that step's spread max |fp32 − float64| of 0, i.e. that may change sides on another machine."""
    delta = np.nanmax(np.abs(f32 - f64), axis=-1, keepdims=True)
    return (np.abs(f32) < FACTOR * delta).sum(-1)


def counting_quanta(t32: dict[str, np.ndarray], t64: dict[str, np.ndarray], config: dict[str, Any]
                    ) -> dict[str, np.ndarray]:
    """Per metric of COUNTING, its step at each recorded step and seed (steps, seeds), from the traces of
    both runs: an error rate's is the number of points that may change sides there (at least one) over n,
    μ's that number times its change per point (:func:`mu_step`)."""
    k_train = np.maximum(near_zero(t32["f_train"], t64["f_train"]), 1)
    k_test = np.maximum(near_zero(t32["f_test"], t64["f_test"]), 1)
    mu = np.maximum(t32["mu_step"], t64["mu_step"])
    return dict(zip(COUNTING, (k_train / config["n"], k_test / config["n_test"], k_test * mu), strict=True))


def _max_abs(a: np.ndarray) -> float:
    finite = a[np.isfinite(a)]
    return float(np.max(np.abs(finite))) if finite.size else 0.0


def tolerance_entry(name: str, fp32: np.ndarray, fp64: np.ndarray, config: dict[str, Any], golden: str,
                    steps: np.ndarray | None = None, seeds: list[str] | None = None,
                    source: tuple[str, float] | None = None) -> dict[str, Any]:
    """spread, scale, quantum, tolerance and the term that set it, for one metric; for a metric of
    COUNTING (``steps``: its quantum per recorded step and seed), the tolerance of every entry too; for
    a summary value of SUMMARY_SOURCES (``source``: that metric and its spread), at least its source's
    spread (a single value is a single sample of the rounding, and can be small by chance)."""
    if fp32.shape != fp64.shape or not np.array_equal(np.isnan(fp32), np.isnan(fp64)):
        raise SystemExit(f"{name}: fp32 and float64 runs differ in shape or in where the entries are None/NaN")
    both = ~np.isnan(fp64)
    spread, scale = _max_abs(fp32[both] - fp64[both]), _max_abs(fp64)
    entry = {"spread": spread, "spread_rel": spread / scale if scale else 0.0, "scale": scale}
    if source is not None and source[1] > spread:
        spread = source[1]
        entry |= {"spread": spread, "spread_rel": spread / scale if scale else 0.0, "spread_of": source[0]}
    if name in NOT_REPRODUCIBLE.get(golden, {}).get("metrics", ()):
        return {**entry, "quantum": 0.0, "tolerance": None, "set_by": "not reproducible"}
    if steps is not None:
        # the quantum with room for the rounding of the two values it separates (k/n is not exact in binary)
        per_entry = np.maximum(steps * (1 + 1e-9), FLOOR_REL * scale).T.ravel()  # seed by seed, as metrics()
        if (np.abs(fp32 - fp64)[both] > per_entry[both]).any():
            raise SystemExit(f"{name}: the fp32 and float64 runs differ by more than the points near 0 explain")
        per_seed = {s: per_entry[i * steps.shape[0]:(i + 1) * steps.shape[0]].tolist() for i, s in enumerate(seeds)}
        return {**entry, "quantum": float(steps.max()), "tolerance": float(per_entry.max()),
                "set_by": "quantum per step", "tolerance_per_step": per_seed}
    terms = {"factor × spread": FACTOR * spread, "floor": FLOOR_REL * scale,
             "quantum": quantum(name, config) * (1 + 1e-9),
             "roundoff": CONSTANT_ROUNDOFF if name.startswith("summary.constants.") else 0.0}
    by = max(terms, key=terms.get)
    return {**entry, "quantum": quantum(name, config), "tolerance": terms[by], "set_by": by}


def entry_tolerances(entry: dict[str, Any], size: int) -> np.ndarray:
    """The tolerance of each of a metric's ``size`` entries (flattened seed by seed, as metrics())."""
    if "tolerance_per_step" in entry:
        return np.concatenate([np.asarray(v, dtype=float) for v in entry["tolerance_per_step"].values()])
    return np.full(size, entry["tolerance"], dtype=float)


def golden_diff(new: np.ndarray, old: np.ndarray) -> float:
    """max |new − old| over the entries (∞ if they differ in shape or in where they are None/NaN)."""
    if new.shape != old.shape or not np.array_equal(np.isnan(new), np.isnan(old)):
        return math.inf
    return _max_abs(new - old)


def golden_ratio(new: np.ndarray, old: np.ndarray, entry: dict[str, Any]) -> float:
    """max over the entries of |new − old| / tolerance (∞ if they differ in shape or in where they are
    None/NaN, or where a tolerance of 0 is exceeded); 0 for a metric without tolerance."""
    if new.shape != old.shape or not np.array_equal(np.isnan(new), np.isnan(old)):
        return math.inf
    if entry["tolerance"] is None:
        return 0.0
    ok = ~np.isnan(old)
    diff, tol = np.abs(new - old)[ok], entry_tolerances(entry, old.size)[ok]
    ratios = np.where(tol > 0, diff / np.where(tol > 0, tol, 1.0), np.where(diff > 0, math.inf, 0.0))
    return float(ratios.max()) if ratios.size else 0.0


def worst_ratio(entries: dict[str, Any]) -> dict[str, Any]:
    """The metric whose golden_ratio is the largest, and that ratio."""
    where = max(entries, key=lambda k: entries[k]["golden_ratio"])
    return {"worst_diff_over_tolerance": entries[where]["golden_ratio"], "metric": where}


def machine(record: dict[str, Any]) -> dict[str, Any]:
    """This CPU, and the versions and threads the record names."""
    import torch

    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    env = record.get("environment", {})
    return {"cpu": model, "cpu_count": os.cpu_count(), "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            **{k: env.get(k) for k in ("torch_threads", "platform", "python", "torch", "numpy")}}


def run_record(argv: list[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The record of ``python -m earlylin.verify argv``, run here, and its trace: the network's train and
    test outputs (steps, seeds, points) and :func:`mu_step` (steps, seeds) at every recorded step."""
    from earlylin.cli import verify
    from earlylin.experiments import comparison as compare

    out = Path(argv[argv.index("--out") + 1])
    trace: dict[str, list[np.ndarray]] = {"f_train": [], "f_test": [], "mu_step": []}
    real_row, real_mu = compare.LinearComparison.row, compare.mu_metric

    def row(self: Any, t: int, f_train: Any, f_test: Any) -> Any:
        trace["f_train"].append(f_train.double().cpu().numpy().copy())
        trace["f_test"].append(f_test.double().cpu().numpy().copy())
        return real_row(self, t, f_train, f_test)

    def mu(f_net: Any, f_lin: Any, y: Any) -> Any:
        trace["mu_step"].append(mu_step(f_net, f_lin, y))
        return real_mu(f_net, f_lin, y)

    compare.LinearComparison.row, compare.mu_metric = row, mu
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            code = verify.main(argv)
    finally:
        compare.LinearComparison.row, compare.mu_metric = real_row, real_mu
    if code != 0:
        raise SystemExit(f"python -m earlylin.verify {' '.join(argv)}: exit status {code}")
    record = json.loads((out / "record.json").read_text(encoding="utf-8"))
    return record, {k: np.stack(v) for k, v in trace.items()}


def derive(name: str, records: Path | None, from_records: Path | None) -> dict[str, Any]:
    golden = load_golden(name)
    with tempfile.TemporaryDirectory() as tmp:
        argv = {"fp32": golden_argv(golden, Path(tmp) / "fp32"),
                "float64": golden_argv(golden, Path(tmp) / "float64", "--dtype", "float64")}
        runs, traces = {}, {}
        for dtype, args in argv.items():
            kept = from_records / f"{name}_{dtype}" if from_records else None
            if kept:
                runs[dtype] = json.loads(kept.with_suffix(".json").read_text(encoding="utf-8"))
                with np.load(kept.with_suffix(".npz")) as z:
                    traces[dtype] = {k: z[k] for k in z.files}
            else:
                runs[dtype], traces[dtype] = run_record(args)
            if records:
                records.mkdir(parents=True, exist_ok=True)
                (records / f"{name}_{dtype}.json").write_text(json.dumps(runs[dtype], indent=1), encoding="utf-8")
                np.savez_compressed(records / f"{name}_{dtype}.npz", **traces[dtype])
            args[args.index("--out") + 1] = "OUT"
    m32, m64, mg = metrics(runs["fp32"]), metrics(runs["float64"]), metrics(golden)
    if missing := (set(mg) - set(m32)) | (set(mg) - set(m64)):
        raise SystemExit(f"{name}: the runs lack metrics of the golden: {sorted(missing)}")
    if len(golden["runs"]) != 1:
        raise SystemExit(f"{name}: a golden of one run (one d) is what the traces of the counting metrics fit")
    config, seeds = golden["runs"][0]["config"], list(golden["runs"][0]["per_seed"])
    assert seeds == [str(s) for s in config["seeds"]], seeds
    steps = counting_quanta(traces["fp32"], traces["float64"], config)
    entries: dict[str, Any] = {}
    for k in sorted(mg, key=lambda k: (not k.startswith("per_seed."), k)):  # the sources first
        src = "per_seed." + SUMMARY_SOURCES.get(k.removeprefix("summary."), "?")
        source = (src, entries[src]["spread"]) if k.startswith("summary.") and src in entries else None
        entry = tolerance_entry(k, m32[k], m64[k], config, name, steps.get(k), seeds, source)
        entries[k] = {**entry, "golden_diff": golden_diff(m32[k], mg[k]),
                      "golden_ratio": golden_ratio(m32[k], mg[k], entry)}
    if odd := [k for k, m in entries.items() if math.isinf(m["golden_diff"])]:
        raise SystemExit(f"{name}: this machine's fp32 run differs from the golden in shape or None entries: {odd}")
    check = worst_ratio(entries)
    if check["worst_diff_over_tolerance"] > 1:
        raise SystemExit(f"{name}: the golden record is not this code's behaviour: {check['metric']} differs from "
                         f"this machine's fp32 run by {check['worst_diff_over_tolerance']:.3g}× its tolerance")
    return {"golden_sha256": golden_sha256(name),
            "commands": {k: "python -m earlylin.verify " + " ".join(v) for k, v in argv.items()},
            "machine": machine(runs["fp32"]),
            "golden_vs_this_machine": check,
            "not_reproducible": NOT_REPRODUCIBLE.get(name),
            "metrics": entries}


def write(goldens: dict[str, Any]) -> None:
    data = {"rule": {"tolerance": "max(factor × spread, floor_rel × scale, quantum, constant_roundoff for "
                                  "summary.constants.*)", "factor": FACTOR,
                     "floor_rel": FLOOR_REL,
                     "constant_roundoff": CONSTANT_ROUNDOFF,
                     "spread": "max over the metric's entries (seeds, steps) of |fp32 − float64|; a summary "
                     "value's at least that of the per_seed metric it is a mean or maximum of (spread_of)",
                     "scale": "max over the metric's entries of |float64|",
                     "quantum": "the linear model's error rate: one point (1/n_test); else 0",
                     "tolerance_per_step": "the network's error rates and μ, per recorded step and seed: "
                     "max(quantum, floor_rel × scale), the quantum k/n for an error rate and k × μ's change "
                     "per point for μ, k the points within factor × that step's spread of 0 (at least one)",
                     "not reproducible": "no tolerance; shape only (not_reproducible says why)",
                     "made_by": "python tests/golden/derive_tolerances.py"},
            "goldens": {k: goldens[k] for k in sorted(goldens)}}
    TOLERANCES.write_text(json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("names", nargs="*", help=f"golden records (default: all: {', '.join(golden_names())})")
    p.add_argument("--records", type=Path, metavar="DIR",
                   help="also keep the fp32 and float64 records there (<name>_fp32.json, <name>_float64.json)")
    p.add_argument("--from-records", type=Path, metavar="DIR",
                   help="no runs: derive from the records an earlier --records DIR kept (same machine)")
    args = p.parse_args(argv)
    unknown = set(args.names) - set(golden_names())
    if unknown:
        p.error(f"no golden record {', '.join(sorted(unknown))}")
    data = json.loads(TOLERANCES.read_text(encoding="utf-8")) if TOLERANCES.exists() else {}
    goldens = dict(data.get("goldens", {}))
    for name in args.names or golden_names():
        print(f"{name}: {'records' if args.from_records else 'fp32 and float64 runs'} ...", file=sys.stderr,
              flush=True)
        goldens[name] = derive(name, args.records, args.from_records)
        g = goldens[name]["golden_vs_this_machine"]
        print(f"{name}: golden vs this machine: {g['worst_diff_over_tolerance']:.3g} × tolerance ({g['metric']})",
              file=sys.stderr, flush=True)
        write(goldens)  # after each golden: a long run keeps what it has done
    write(goldens)
    print(f"wrote {TOLERANCES}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(GOLDEN.parent.parent))
    sys.exit(main())

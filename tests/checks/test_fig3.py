"""Fig 3's checks per study (paper-size FC settings, the CNN at n = 1,000, the wide grid) and their small studies.

Verdicts are flipped both ways on constructed records: the committed paper-size FC-on-the-sphere run
(which has the exact-NTK model) relabelled as each study's setting. The quick-size CNN study runs end
to end through :func:`earlylin.studies.get_study` into its check, table and figure.
"""

from __future__ import annotations

import copy
import json

import pytest

from earlylin.figures.plots import PLOTS
from earlylin.figures.tables import TABLES
from earlylin.runtime.records import Cache
from earlylin.studies import get_study, study_configs
from earlylin.studies.presets import FIG3_CNN_SETTINGS, STUDY_SPECS
from paper_checks.checks import CHECK_STUDIES, CHECKS, CLAIM_OF, UNKNOWNS
from paper_checks.result import FIG3_GRIDS, FIG3_SINGLE, FIG3_WINDOW_CHECKS, VLIN_PERP_CHECKS
from tests.conftest import ROOT, TOL

RECORDS = ROOT / "figures" / "records"


def _base_run() -> dict:
    run = json.loads((RECORDS / "fig3_fc_sphere.json").read_text())["runs"][0]
    for m in run["per_seed"].values():  # recorded since the exact-NTK model's V_lin⊥ split was added
        m.setdefault("test_res_perp_ntk_inf", [0.97 * v for v in m["test_res_perp_lin"]])
    return run


def _record(study: str, settings: list[dict]) -> dict:
    runs = []
    for setting in settings:
        run = copy.deepcopy(_base_run())
        run["config"].update(setting)
        runs.append(run)
    return {study: {"study": study, "size": "paper", "kind": "cifar", "spec": {}, "runs": runs}}


def _curve(run: dict, key: str, fn) -> None:
    for m in run["per_seed"].values():
        m[key] = [fn(t) for t in m["steps"]]


def _window_cases(rec: dict, study: str, name: str) -> None:
    runs = rec[study]["runs"]
    for run in runs:
        _curve(run, "test_rel_mse", lambda t: 0.05 if t <= 1000 else 0.05 + 1e-4 * (t - 1000))
    assert CHECKS[name](rec).verdict == "holds"
    _curve(runs[-1], "test_rel_mse", lambda t: 0.5)
    assert CHECKS[name](rec).verdict == ("fails" if len(runs) == 1 else "depends")
    for run in runs:
        _curve(run, "test_rel_mse", lambda t: 0.05)  # small early but never grows
    assert CHECKS[name](rec).verdict == "inconclusive"


def _perp_cases(rec: dict, study: str, name: str) -> None:
    runs = rec[study]["runs"]
    for run in runs:
        _curve(run, "test_res_perp_lin", lambda t: 1.0)
        _curve(run, "test_res_perp_ntk_inf", lambda t: 0.9)  # the kernel's own drop, reported apart
        _curve(run, "test_res_perp_net", lambda t: 0.9 if t <= 1000 else 0.8)
    r = CHECKS[name](rec)
    assert r.verdict == "holds" and abs(r.rows[0].numbers["kernel_early_drop"] - 0.1) < TOL["exact"]
    _curve(runs[0], "test_res_perp_net", lambda t: 0.8)  # leaves its kernel early
    assert CHECKS[name](rec).verdict == ("fails" if len(runs) == 1 else "depends")


@pytest.mark.parametrize("study", FIG3_SINGLE)
def test_single_study_checks_flip(study):
    c = STUDY_SPECS["paper"][study]["cifar"]
    setting = {k: c[k] for k in ("arch", "width", "activation", "cifar_norm") if k in c}
    rec = _record(study, [setting])
    name = f"{study}_window"
    _window_cases(copy.deepcopy(rec), study, name)
    assert CHECKS[name](rec).claim_id == "fig3_window" and CHECK_STUDIES[name] == (study,)
    r = CHECKS[name](rec)
    assert "exact-NTK model" in r.measured and "rel_mse_ntk_inf_early" in r.rows[0].numbers
    if study != "fig3_fc_fitted":
        _perp_cases(copy.deepcopy(rec), study, f"vlin_perp{study.removeprefix('fig3')}")


@pytest.mark.parametrize("study", list(FIG3_GRIDS))
def test_grid_study_checks_flip(study):
    cfgs = study_configs(STUDY_SPECS["quick"][study], "cpu")
    rec = _record(study, [{k: getattr(c, k) for k in ("arch", "width", "activation", "cifar_norm")} for c in cfgs])
    _window_cases(copy.deepcopy(rec), study, f"{study}_window")
    _perp_cases(copy.deepcopy(rec), study, f"vlin_perp{study.removeprefix('fig3')}")
    assert len(CHECKS[f"{study}_window"](rec).rows) == 2 * len(cfgs)  # each run under both early windows


def test_every_fig3_check_is_registered_with_its_claim():
    fig3 = [n for n in CHECKS if n.startswith(("fig3_", "vlin_perp"))]
    assert sorted(fig3) == sorted(FIG3_WINDOW_CHECKS + VLIN_PERP_CHECKS)
    assert all(CLAIM_OF[n] == "fig3_window" for n in FIG3_WINDOW_CHECKS)
    assert all(CLAIM_OF[n] == "vlin_perp" for n in VLIN_PERP_CHECKS)
    assert all("activation" in UNKNOWNS[n] for n in fig3)


def test_new_study_specs():
    for size in ("quick", "paper"):
        seen: set[tuple[str, int]] = set()
        for study in ("fig3_grid", "fig3_grid_wide", "fig3_grid_widest"):
            configs = study_configs(STUDY_SPECS[size][study], "cpu")
            assert len(configs) == 4 * sum(len(w) for w in STUDY_SPECS[size][study]["widths"].values())
            widths = {(c.arch, c.width) for c in configs}
            assert not seen & widths, study  # each grid study adds widths, repeats none
            assert all(w > max((v for a, v in seen if a == arch), default=0) for arch, w in widths), study
            seen |= widths
        cnn = study_configs(STUDY_SPECS[size]["fig3_cnn_cpu"], "cpu")
        assert [(c.activation, c.cifar_norm) for c in cnn] == [(s["activation"], s["cifar_norm"])
                                                              for s in FIG3_CNN_SETTINGS]
        assert all(c.arch == "cnn" and c.ntk_model for c in cnn)
    paper = study_configs(STUDY_SPECS["paper"]["fig3_cnn_erf_sphere"], "cpu")[0]
    assert (paper.arch, paper.activation, paper.cifar_norm, paper.n, paper.n_test) == ("cnn", "erf", "sphere",
                                                                                       10_000, 2_000)


def test_quick_cnn_study_end_to_end(tmp_path):
    """The quick fig3_cnn_cpu study: two CNN runs with the exact-NTK model, then its checks, table and figure;
    a second call is served whole from the cache."""
    cache = Cache(tmp_path)
    rec = {"fig3_cnn_cpu": get_study("fig3_cnn_cpu", "quick", "cpu", cache)}
    runs = rec["fig3_cnn_cpu"]["runs"]
    assert [(r["config"]["activation"], r["config"]["cifar_norm"]) for r in runs] == [("erf", "sphere"),
                                                                                     ("relu", "coordinate")]
    for name, rows in (("fig3_cnn_cpu_window", 4), ("vlin_perp_cnn_cpu", 2)):  # the window: 2 runs × 2 windows
        r = CHECKS[name](rec)
        assert len(r.rows) == rows and r.verdict in ("holds", "fails", "depends", "inconclusive")
    assert "exact-NTK model's" in CHECKS["vlin_perp_cnn_cpu"](rec).rows[0].measured
    table = TABLES["fig3_cnn_cpu"].table(rec)
    assert table["n"] == [STUDY_SPECS["quick"]["fig3_cnn_cpu"]["cifar"]["n"]] * 2
    assert all(v == v for v in table["max_rel_mse_ntk_early"])  # no NaN: the exact-NTK model ran
    assert len(PLOTS["fig3_cnn_cpu"](table).axes) == 2
    assert get_study("fig3_cnn_cpu", "quick", "cpu", cache) == rec["fig3_cnn_cpu"]


@pytest.mark.parametrize(("rel", "verdict", "end"), [
    (lambda t: 0.02 if t < 800 else 0.3, "holds", 800),         # tracks for ~1,000 steps, then departs
    (lambda t: 0.02 if t < 100 else 0.3, "fails", 100),         # departs far earlier than the claim
    (lambda t: 0.02 if t < 400 else 0.3, "inconclusive", 400),  # between a quarter and half of the claim
    (lambda t: 0.02, "inconclusive", None),                     # never departs within the run
    (lambda t: 0.3 if t < 700 else 0.5, "inconclusive", None),  # 0.5 < 2 × the initial mismatch 0.3: not departure
    (lambda t: 0.3 if t < 700 else 0.7, "holds", 700),
])
def test_measured_window_row(rel, verdict, end):
    """The measured-window row of a CIFAR run: the linear regime's end, against max(ε, 2 × initial mismatch)."""
    from paper_checks.rows import fig3_regime_row, fig3_rows

    run = _base_run()
    _curve(run, "test_rel_mse", lambda t: None if t == 0 else rel(t))
    row = fig3_regime_row(run)
    steps = next(iter(run["per_seed"].values()))["steps"]
    first = None if end is None else min(t for t in steps if t >= end)  # the first recorded step past the jump
    assert (row.verdict, row.numbers["linear_regime_steps"]) == (verdict, first)
    assert [r.choice.split("window: ")[1] for r in fig3_rows(run)] == ["the paper's ~1,000 steps",
                                                                       "the measured linear regime"]

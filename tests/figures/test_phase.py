"""The phase diagram: path slopes against a power law, the check's verdicts, specs, and the quick study end to end."""

from __future__ import annotations

import itertools
import json
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest

from earlylin import figures, studies
from earlylin.experiments.analysis import col
from earlylin.figures.plots import PLOTS
from earlylin.figures.tables import table_phase
from earlylin.runtime.records import Cache, read_csv
from earlylin.studies.phase import ALPHA_FIXED_M, ALPHA_GROWN, grid_of, path_slopes
from earlylin.studies.presets import STUDY_SPECS
from paper_checks.checks import phase_diagram
from tests.conftest import assert_close

DS, RS = (8, 16, 32, 64), (1, 2, 4, 8, 16)


def power_law_record(a: float, b: float, seeds=(0, 1), noise=None) -> dict:
    """A phase study record whose error is exactly (1 + 0.1·seed)·d^a·(m/d)^b (times ``noise``(seed, d, r))."""
    t: dict[str, list] = {k: [] for k in ("d", "m_over_d", "width", "n", "seed", "early_window_steps", "steps",
                                          "max_rel_mse_early", "max_mse_early", "escape_step", "error")}
    for d, r, s in itertools.product(DS, RS, seeds):
        err = (1 + 0.1 * s) * d**a * r**b * (noise(s, d, r) if noise else 1.0)
        T = round(5 * d * math.log(d))
        for key, val in (("d", d), ("m_over_d", float(r)), ("width", r * d), ("n", round(8 * d**1.5)), ("seed", s),
                         ("early_window_steps", T), ("steps", 3 * T), ("max_rel_mse_early", err),
                         ("max_mse_early", err / 4), ("escape_step", 2 * T), ("error", None)):
            t[key].append(val)
    return {"phase": {"table": t}}


def test_path_slopes_of_a_power_law():
    """err = d^a (m/d)^b: along m/d ∝ d^α the slope is a + bα exactly (log-log interpolation is exact)."""
    table = table_phase(power_law_record(0.2, -0.8))
    for alpha, expect in ((ALPHA_GROWN, 0.2 - 0.8 * 0.5), (ALPHA_FIXED_M, 0.2 + 0.8), (0.0, 0.2)):
        paths = path_slopes(table, alpha)
        assert paths and all(len(p["d"]) >= 3 for p in paths)
        assert_close([p["slope"] for p in paths], expect, "exact", rtol=0)
    grown = path_slopes(table, ALPHA_GROWN)
    # from m/d = 1 at d = 8: m/d = 1, √2, 2, 2√2 — every column, interpolated between rows
    first = next(p for p in grown if p["m_over_d_at_d0"] == 1.0 and p["seed"] == 0)
    assert_close(first["m"], [8 * (d / 8) ** 1.5 for d in DS], "exact", atol=0)
    assert_close(first["values"], [d**0.2 * (d / 8) ** (-0.4) for d in DS], "exact", atol=0)
    # from m/d = 8 the path spans 3 columns (8, 8√2, 16), from 16 only 1: left out
    assert {p["m_over_d_at_d0"]: len(p["d"]) for p in grown if p["seed"] == 0} == {1.0: 4, 2.0: 4, 4.0: 4, 8.0: 3}


def test_a_failed_cell_stops_a_path():
    rec = power_law_record(0.0, -1.0, seeds=(0,))
    t = rec["phase"]["table"]
    for i, (d, r) in enumerate(zip(t["d"], t["m_over_d"], strict=True)):
        if d == 16 and r == 1.0:
            t["max_rel_mse_early"][i], t["error"][i] = None, "ConfigError: test"
    paths = {p["m_over_d_at_d0"]: p for p in path_slopes(table_phase(rec), ALPHA_GROWN)}
    assert 1.0 not in paths  # m/d = √2 at d = 16 sits next to the failed cell: the path stops at 1 column
    assert paths[2.0]["d"] == list(map(float, DS))
    grid = grid_of(table_phase(rec), "max_rel_mse_early")[2]
    assert np.isnan(grid[0, 1]) and np.isfinite(grid[1, 1]) and np.isfinite(grid[0, 0])


def test_phase_check_flips():
    assert phase_diagram(power_law_record(0.0, -1.0)).verdict == "holds"  # grown −0.5, fixed m +1
    assert phase_diagram(power_law_record(0.5, 0.0)).verdict == "fails"   # grows with d along m ∝ d^{3/2}
    assert phase_diagram(power_law_record(-0.5, 0.0)).verdict == "fails"  # falls with d at fixed m
    # one seed rises along m ∝ d^{3/2}, the mean still falls: inconclusive
    bump = power_law_record(0.0, -1.0, noise=lambda s, d, r: d**0.7 if s == 1 else 1.0)
    r = phase_diagram(bump)
    assert r.verdict == "inconclusive" and r.numbers["grown"]["max"] > 0 > r.numbers["grown"]["mean"]
    two_columns = power_law_record(0.0, -1.0)
    t = two_columns["phase"]["table"]
    keep = [i for i, d in enumerate(t["d"]) if d in (8, 16)]
    two_columns["phase"]["table"] = {k: [v[i] for i in keep] for k, v in t.items()}
    assert phase_diagram(two_columns).verdict == "inconclusive"  # no path spans 3 columns
    assert "slope" in r.measured and r.studies == ("phase",)


def test_specs_validate_and_pass_the_fig1_point():
    """Every config of both sizes is valid; the paper grid's n = scale·d^{3/2} gives n = 20,000 at d = 50."""
    for size in ("quick", "paper"):
        cfgs = studies.study_configs(STUDY_SPECS[size]["phase"], "cpu")
        spec = STUDY_SPECS[size]["phase"]
        assert len(cfgs) == math.prod(len(v) for v in spec["grid"].values())
        for c in cfgs:
            assert c.layers == "both" and c.activation == "erf" and c.width % 2 == 0
            assert c.steps >= spec["fixed"]["steps_per_window"] * round(5 * c.d * math.log(c.d))
    paper = STUDY_SPECS["paper"]["phase"]["fixed"]
    assert round(paper["n_scale"] * 50**1.5) == 20_000
    big = studies.study_configs(STUDY_SPECS["paper"]["phase"], "cpu")[-1]
    assert (big.d, big.width, big.n, big.steps) == (128, 1024, 81_920, 5 * round(5 * 128 * math.log(128)))


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """The quick-size phase study (the size committed as figures/phase_quick.*), run once on the CPU."""
    root = tmp_path_factory.mktemp("phase")
    index = figures.regenerate(["phase"], "quick", "cpu", root / "out", root / "cache", progress=False)
    return {"root": root, "index": index}


def test_quick_study_end_to_end(quick):
    out = quick["root"] / "out"
    table = read_csv(out / "phase.csv")
    assert len(table["d"]) == 3 * 3 * 2 and set(table["d"]) == {"8", "16", "32"}
    assert all(e == "" for e in table["error"])
    rec = json.loads((out / "records" / "phase.json").read_text())
    assert rec["kind"] == "phase" and rec["summary"]["computed"] == 18
    r = phase_diagram({"phase": rec})
    assert r.verdict in ("holds", "fails", "inconclusive") and r.numbers["grown"]["n"] >= 2
    # the heatmap shows the seed means of the CSV, computed here from its rows
    fig = PLOTS["phase"](table)
    mesh = fig.axes[0].collections[0].get_array()
    d, ratio, y = col(table, "d"), col(table, "m_over_d"), col(table, "max_rel_mse_early")
    expect = [[y[(d == dv) & (ratio == rv)].mean() for dv in (8, 16, 32)] for rv in (1, 4, 16)]
    assert_close(np.asarray(mesh).reshape(3, 3), expect, "exact", atol=0)
    plt.close(fig)
    assert (out / "phase.png").stat().st_size > 10_000


def test_quick_study_rerun_is_cached(quick):
    """The study record and every point come from the cache; no point is recomputed."""
    cache = Cache(quick["root"] / "cache")
    rec = studies.get_study("phase", "quick", "cpu", cache)
    payload_hit = cache.load({"study": "phase", "size": "quick", "spec": STUDY_SPECS["quick"]["phase"],
                              "device": "cpu"})
    assert payload_hit is not None and rec["table"] == payload_hit["table"]
    fresh = studies._run("phase", "quick", STUDY_SPECS["quick"]["phase"], "cpu", cache, False)
    assert fresh["summary"]["cache_hits"] == 18 and fresh["summary"]["computed"] == 0

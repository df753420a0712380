"""The figures command: every figure from its CSV table alone, cached studies, replot without runs."""

from __future__ import annotations

import copy
import json

import matplotlib.pyplot as plt
import numpy as np
import pytest

from earlylin import figures, studies
from earlylin.cli import figures as figures_cli
from earlylin.errors import ConfigError
from earlylin.experiments.analysis import col
from earlylin.figures.plots import PLOTS
from earlylin.figures.tables import TABLES
from earlylin.runtime.records import Cache, read_csv, write_csv_atomic
from earlylin.studies import presets
from earlylin.studies.alpha import alpha_configs

FIGURES = list(TABLES)

# Real runs at a size of seconds: every study kind (two-layer sweeps, widths, CIFAR FC/CNN, kernel)
TINY = {
    "fig1": {"kind": "two_layer", "ds": [12], "base": {"n": 200, "n_test": 100, "width": 32, "steps": 200,
                                                        "seeds": [0, 1]}},
    "fig1c_fixed": {"kind": "two_layer", "ds": [6, 12], "base": {"n": 200, "n_test": 100, "width": 32, "steps": 80,
                                                                 "seeds": [0, 1]}},
    "fig1c_scaled": {"kind": "two_layer", "ds": [6, 12], "scale_alpha": 0.5,
                     "base": {"n": 100, "n_test": 100, "width": 16, "steps": 80, "seeds": [0, 1]}},
    "fig2": {"kind": "two_layer", "ds": [12], "base": {"activation": "relu", "target": "norm", "n": 200,
                                                        "n_test": 100, "width": 32, "steps": 200, "seeds": [0, 1]}},
    **{f"fig2_target_{t}": {"kind": "two_layer", "ds": [8], "base": {
        "activation": "relu", "target": t, "n": 100, "n_test": 50, "width": 16, "steps": 60, "seeds": [0]}}
       for t in ("norm", "relu_teacher", "radial")},
    "fig3_grid": {"kind": "cifar_grid", "grid": {"activation": ["erf", "relu"], "cifar_norm": ["coordinate", "sphere"]},
                  "widths": {"fc": [8], "cnn": [2]}, "cifar": {"n": 40, "n_test": 30, "steps": 20, "ntk_model": True}},
    **{f"fig3_fc_{a}_{z}": {"kind": "cifar", "cifar": {"activation": a, "cifar_norm": z, "arch": "fc", "width": 8,
                                                       "n": 40, "n_test": 30, "steps": 20, "ntk_model": True}}
       for a, z in (("erf", "coordinate"), ("relu", "sphere"))},
    "fig3_grid_wide": {"kind": "cifar_grid", "grid": {"activation": ["erf"], "cifar_norm": ["sphere"]},
                       "widths": {"fc": [12], "cnn": [3]}, "cifar": {"n": 40, "n_test": 30, "steps": 20,
                                                                   "ntk_model": True}},
    "fig3_grid_widest": {"kind": "cifar_grid", "grid": {"activation": ["relu"], "cifar_norm": ["coordinate"]},
                         "widths": {"fc": [14], "cnn": [5]}, "cifar": {"n": 40, "n_test": 30, "steps": 20,
                                                                     "ntk_model": True}},
    "fig3_cnn_cpu": {"kind": "cifar_settings", "settings": [{"activation": "erf", "cifar_norm": "sphere"},
                                                            {"activation": "relu", "cifar_norm": "coordinate"}],
                     "cifar": {"arch": "cnn", "width": 2, "n": 40, "n_test": 30, "steps": 20, "ntk_model": True}},
    "fig3_cnn_erf_sphere": {"kind": "cifar", "cifar": {"arch": "cnn", "width": 4, "n": 60, "n_test": 40, "steps": 30,
                                                       "n_fit": 32}},
    "fig3_fc": {"kind": "cifar", "cifar": {"arch": "fc", "width": 16, "n": 60, "n_test": 40, "steps": 30, "n_fit": 32}},
    "fig3_cnn": {"kind": "cifar", "cifar": {"arch": "cnn", "width": 4, "n": 60, "n_test": 40, "steps": 30,
                                            "n_fit": 32}},
    "fig3_fc_fitted": {"kind": "cifar", "cifar": {"arch": "fc", "width": 16, "n": 60, "n_test": 40, "steps": 30,
                                                  "n_fit": 32, "linear": "fitted"}},
    "fig3_fc_sphere": {"kind": "cifar", "cifar": {"arch": "fc", "width": 16, "n": 60, "n_test": 40, "steps": 30,
                                                  "ntk_model": True}},
    "cifar_width": {"kind": "cifar_widths", "cifar": {"n": 60, "n_test": 40, "steps": 30, "n_fit": 32},
                    "widths": {"fc": [8, 16], "cnn": [2, 4]}},
    **{study: {"kind": "cifar_settings", "cifar": {"arch": "fc", "width": 8, "depth": 1, "n": 40, "n_test": 30,
                                                   "steps": 20},
               "settings": [{"classes": None, "loss": "squared", "optimizer": "gd", "batch_size": None},
                            {"classes": [0, 1, 2], "loss": "cross_entropy", "optimizer": "sgd", "batch_size": 16}]}
       for study in ("training", "training_cpu")},
    "alpha": {"kind": "alpha", "alphas": [1, 3], "d": 4, "width": 8, "n": 40, "n_test": 20, "lr": 0.5, "steps": 20,
              "n_fit": 16, "at_lr_t": 5.0, "threshold": 1e-3},
    "kernel": {"kind": "kernel_bound", "kernel": {"ds": [8, 16], "seeds": [0, 1], "tol": 1e-5}},
    "width": {"kind": "two_layer_widths", "ds": [8], "widths": [16, 64],
              "base": {"n": 100, "n_test": 100, "steps": 60, "seeds": [0, 1]}},
    "escape": {"kind": "two_layer", "ds": [4, 8], "base": {"n": 100, "n_test": 100, "width": 16, "steps": 1500,
                                                            "seeds": [0]}},
    "first_layer": {"kind": "two_layer", "ds": [6, 12], "scale_alpha": 0.5,
                    "base": {"layers": "first", "n": 100, "n_test": 100, "width": 16, "steps": 80, "seeds": [0, 1]}},
    "phase": {"kind": "phase", "family": "two_layer", "grid": {"d": [4, 8], "m_over_d": [1, 4]},
              "fixed": {"n_exponent": 1.5, "n_scale": 4, "n_test": 50, "steps_per_window": 2, "n_log": 20},
              "seeds": [0, 1]},
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Every figure regenerated once at the tiny size (on the CPU), with its cache and output folder."""
    mp = pytest.MonkeyPatch()
    mp.setitem(presets.STUDY_SPECS, "quick", TINY)
    root = tmp_path_factory.mktemp("figs")
    out, cache = root / "out", root / "cache"
    index = figures.regenerate(list(FIGURES), "quick", "cpu", out, cache, progress=False)
    yield {"out": out, "cache": cache, "index": index, "mp": mp}
    mp.undo()


def test_every_figure_has_png_csv_and_record(tiny):
    out = tiny["out"]
    for fid, spec in TABLES.items():
        assert (out / f"{fid}.png").stat().st_size > 1000
        table = read_csv(out / f"{fid}.csv")
        assert len({len(v) for v in table.values()}) == 1 and len(next(iter(table.values()))) > 0
        for study in spec.studies:
            rec = json.loads((out / "records" / f"{study}.json").read_text())
            assert rec["study"] == study and rec["size"] == "quick" and "environment" in rec
    assert set(tiny["index"]["figures"]) == set(FIGURES)


@pytest.mark.parametrize("fid", list(FIGURES))
def test_plot_draws_the_table_alone(tiny, fid, tmp_path):
    """Each plot takes only the CSV table; changing a number in the table changes the drawn data."""
    table = read_csv(tiny["out"] / f"{fid}.csv")
    fig = PLOTS[fid](table)
    before = [np.asarray(line.get_ydata(), float).copy() for ax in fig.axes for line in ax.lines]
    assert before, f"{fid}: nothing drawn"
    # scale every float column by 3: the drawn values must follow (the plot reads nothing else)
    numeric = [k for k, v in table.items() if k not in ("step", "d", "m", "n", "seed", "T", "steps_run")
               and all(_is_float(x) for x in v) and any(x != "" for x in v)]
    changed = {k: [str(3.0 * float(x)) if x != "" else x for x in v] if k in numeric else v for k, v in table.items()}
    write_csv_atomic(tmp_path / "t.csv", changed)
    fig2 = PLOTS[fid](read_csv(tmp_path / "t.csv"))
    after = [np.asarray(line.get_ydata(), float) for ax in fig2.axes for line in ax.lines]
    plt.close(fig)
    plt.close(fig2)
    assert any(a.shape == b.shape and not np.allclose(a, b, equal_nan=True) for a, b in zip(after, before,
                                                                                            strict=False))


def _is_float(x: str) -> bool:
    if x == "":
        return True
    try:
        float(x)
    except ValueError:
        return False
    return True


def test_fig1a_lines_are_the_csv_columns(tiny):
    table = read_csv(tiny["out"] / "fig1a.csv")
    fig = PLOTS["fig1a"](table)
    ys = [np.asarray(line.get_ydata(), float) for line in fig.axes[0].lines]
    plt.close(fig)
    np.testing.assert_array_equal(ys[0], col(table, "train_loss_net"))
    np.testing.assert_array_equal(ys[3], col(table, "test_loss_lin"))


def test_replot_runs_nothing_and_rerun_uses_cache(tiny, monkeypatch):
    """--replot draws from the CSVs alone; a second full regeneration loads every study from the cache."""

    def refuse(*a, **k):
        raise AssertionError("a study was run")

    monkeypatch.setattr(studies, "run", refuse)  # every family's runs go through the one pipeline
    monkeypatch.setattr(studies, "run_study", refuse)
    monkeypatch.setattr(studies, "run_kernel_bound", refuse)
    index = figures.regenerate(["fig1a", "kernel_ratio"], "quick", "cpu", tiny["out"], None, replot=True,
                               progress=False)
    assert len(index["pngs"]) == 2
    again = figures.regenerate(list(FIGURES), "quick", "cpu", tiny["out"], tiny["cache"], progress=False)
    assert len(again["pngs"]) == len(FIGURES)
    one = figures.regenerate(["kernel_ratio"], "quick", "cpu", tiny["out"], tiny["cache"], progress=False)
    assert one["figures"] == list(FIGURES) and len(one["pngs"]) == len(FIGURES)  # --only keeps the rest
    saved = json.loads((tiny["out"] / "index.json").read_text())
    assert saved["figures"] == list(FIGURES) and set(saved["study_device"]) >= {"kernel", "fig1"}


def test_figures_from_saved_records_run_nothing(tiny, tmp_path, monkeypatch, capsys):
    """--records makes the tables and figures from saved study records alone: the same CSVs as the run."""

    def refuse(*a, **k):
        raise AssertionError("a study was run")

    monkeypatch.setattr(studies, "get_study", refuse)
    ids = ["fig1a", "fig3_grid", "kernel_ratio"]
    assert figures_cli.main(["--quick", "--records", str(tiny["out"] / "records"), "--out", str(tmp_path),
                             "--only", *ids, "--quiet"]) == 0
    for fid in ids:
        assert (tmp_path / f"{fid}.csv").read_bytes() == (tiny["out"] / f"{fid}.csv").read_bytes()
        assert (tmp_path / f"{fid}.png").stat().st_size > 1000
    capsys.readouterr()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "fig1.json").write_text(json.dumps({"study": "fig1", "size": "paper"}))
    assert figures_cli.main(["--quick", "--records", str(tmp_path / "bad"), "--out", str(tmp_path / "o"), "--only",
                         "fig1a"]) == 1
    assert "expected 'fig1' at 'quick'" in capsys.readouterr().err


def test_corrupted_study_entry_is_recomputed(tiny, monkeypatch):
    cache = Cache(tiny["cache"])
    payload = {"study": "kernel", "size": "quick", "spec": TINY["kernel"], "device": "cpu"}
    path = cache._path(cache.key(payload))
    good = path.read_text()
    entry = json.loads(good)
    entry["result"]["summary"]["max_iterations"] = -1  # checksum no longer matches
    path.write_text(json.dumps(entry))
    calls = []
    real = studies.run_kernel_bound
    monkeypatch.setattr(studies, "run_kernel_bound", lambda *a, **k: calls.append(1) or real(*a, **k))
    rec = studies.get_study("kernel", "quick", "cpu", cache)
    assert calls == [1] and rec["summary"]["max_iterations"] > 0


def test_bad_inputs_fail_before_work(tmp_path, capsys):
    with pytest.raises(ConfigError, match="fig9"):
        figures.regenerate(["fig9"], "quick", "cpu", tmp_path, None)
    assert figures_cli.main(["--only", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown figure id" in capsys.readouterr().err
    assert figures_cli.main(["--replot", "--only", "fig1a", "--out", str(tmp_path / "empty")]) == 2
    with pytest.raises(ConfigError, match="study 'nope'"):
        studies.spec_of("nope", "paper")
    with pytest.raises(ConfigError, match="size 'huge'"):
        studies.spec_of("fig1", "huge")
    assert not list(tmp_path.glob("*.png"))


def test_paper_specs_validate():
    """Every paper-size config is valid (no run): a typo in a spec fails here, not on the GPU."""
    for study, spec in presets.STUDY_SPECS["paper"].items():
        if spec["kind"] == "alpha":
            assert alpha_configs(copy.deepcopy(spec), "cpu"), study
        elif spec["kind"] != "kernel_bound":
            cfgs = studies.study_configs(copy.deepcopy(spec), "cpu")
            assert cfgs, study
        assert set(presets.STUDY_SPECS["quick"]) == set(presets.STUDY_SPECS["paper"])


def test_every_table_has_one_plot_in_order():
    assert list(PLOTS) == list(TABLES) == list(figures.FIGURES)


def test_default_out_is_not_the_committed_figures(tmp_path, monkeypatch, capsys):
    """Without --out the command reads and writes runs/figures/ (--quick: runs/figures-quick/), never figures/."""
    monkeypatch.chdir(tmp_path)
    assert figures_cli.main(["--replot", "--only", "fig1a"]) == 2
    assert "runs/figures/fig1a.csv" in capsys.readouterr().err
    assert figures_cli.main(["--replot", "--quick", "--only", "fig1a"]) == 2
    assert "runs/figures-quick/fig1a.csv" in capsys.readouterr().err


def test_every_study_kind_is_in_the_one_registry():
    """Each study's kind is dispatched through studies.KINDS alone; every kind there is used by a preset."""
    used = {spec["kind"] for specs in presets.STUDY_SPECS.values() for spec in specs.values()}
    assert used == set(studies.KINDS)
    assert studies.study_configs(presets.STUDY_SPECS["quick"]["kernel"], "cpu") == []

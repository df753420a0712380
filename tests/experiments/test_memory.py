"""The memory estimate (earlylin.experiments.memory) against the peak RSS of real runs, and the refusal it
makes possible.

How a run's memory is measured, independently of the estimate: a ``python -c`` subprocess imports earlylin and
then, for each config, forks a child that calls ``earlylin.run(cfg)`` (``device="cpu"``, no result cache) and
reports ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (KiB on Linux) at its end; a first child that runs
nothing gives the baseline. Forking from an import-only process gives every run a fresh process whose peak
starts at the settled RSS of the imports, without paying the ≈ 6 s torch import per config, and a forked
child's ru_maxrss does not inherit its parent's (an exec'd subprocess inherits the peak of the process that
spawned it: here pytest's). The children run one BLAS/OpenMP thread (a loaded 2-core machine slows multi-threaded
eigendecompositions ninefold); two such subprocesses share the cases.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time

import pytest
import torch

from earlylin.config import CifarConfig, Cnn1dConfig, NetworkConfig, TwoLayerConfig
from earlylin.data import cifar_files
from earlylin.errors import ConfigError, DataError, naming
from earlylin.experiments import config_from_dict, family_of
from earlylin.experiments.memory import GIB, OVERHEAD, available_bytes, check_fits, estimate_bytes

MB = 2**20
RUN = dict(steps=1, n_log=2, device="cpu")  # memory does not depend on the step count
# name → config; sizes chosen so that the run's own allocations (≈ 100–400 MB) dominate the ≈ 50 MB that the
# first kernels of any run page in, at ≤ ≈ 7 s each on one core (a fitted run pays ≈ 5 s for torch._dynamo's import)
CASES: dict[str, object] = {
    "two_layer_both_reference": TwoLayerConfig(d=50, n=20_000, n_test=2_000, width=256, step="reference", **RUN),
    "two_layer_both_fast_ntk_lin": TwoLayerConfig(d=50, n=30_000, n_test=2_000, width=256, step="fast", ntk_lin=True,
                                                  **RUN),
    "two_layer_first_reference_ntk_lin_relu": TwoLayerConfig(d=50, n=20_000, n_test=2_000, width=256, layers="first",
                                                             activation="relu", step="reference", ntk_lin=True, **RUN),
    "two_layer_second_fast_relu": TwoLayerConfig(d=50, n=20_000, n_test=5_000, width=512, layers="second",
                                                 activation="relu", step="fast", **RUN),
    "two_layer_2seeds_float64_fast": TwoLayerConfig(d=100, n=8_000, n_test=2_000, width=128, seeds=(0, 1),
                                                    dtype="float64", step="fast", **RUN),
    "cnn1d_both": Cnn1dConfig(d=30, n=2_000, n_test=200, width=64, filter_size=5, **RUN),
    "cnn1d_second_relu_float64": Cnn1dConfig(d=50, n=2_000, n_test=500, width=64, filter_size=10, layers="second",
                                             activation="relu", dtype="float64", **RUN),
    "cifar_fc_ntk_model": CifarConfig(arch="fc", depth=2, width=256, n=1_000, n_test=1_000, ntk_model=True, **RUN),
    "cifar_cnn_ntk_model": CifarConfig(arch="cnn", depth=2, width=16, n=150, n_test=100, ntk_model=True, **RUN),
    "cifar_fc_fitted": CifarConfig(arch="fc", depth=2, width=128, n=500, n_test=200, linear="fitted", n_fit=128,
                                   **RUN),
    "cifar_cnn_fitted": CifarConfig(arch="cnn", depth=2, width=16, n=300, n_test=200, linear="fitted", n_fit=64,
                                    **RUN),
}
# The bound estimate ≤ FACTOR × measured + SLACK. SLACK = OVERHEAD, the estimate's constant for what any run pages
# in (≈ 50 MB measured). FACTOR: the estimate is kept + setup + train (what the run keeps, its largest set-up
# temporary, its largest training temporary), while the true peak is at least kept + max(setup, train) ≥
# (kept + setup + train)/2; so exact terms give at most 2× the peak. The terms round up by at most ≈ 1.5× (φ's
# temporaries, eigh workspaces, the CNN kernel's per-pair arrays: 5.4 KB measured, 7.2 KB counted), hence
# FACTOR = 2 × 1.5 = 3. Measured, (estimate − SLACK)/measured is ≈ 0.7–1.7 on these cases (estimate/measured
# ≈ 1.3–2.2), 1.3–1.6 on runs of 0.5–2 GB (CIFAR CNN and FC nets training n = 1,000–4,000 images, the exact NTK
# at n = 400 (CNN) and 3,000 (FC)), and 2.3 for a depth-1 FC net of width 4,096 (its graph counted as 8 layers).
FACTOR = 3.0
SLACK = OVERHEAD

ZYGOTE = r"""
import json, os, resource, sys, time
import earlylin
from earlylin.experiments import config_from_dict

jobs = json.loads(sys.argv[1])
for job in jobs:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # a fresh process: run one config (or nothing, for the baseline), report the peak
        os.close(r)
        try:
            start = time.perf_counter()
            if job is not None:
                earlylin.run(config_from_dict(job["family"], job["fields"]))
            out = {"maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                   "seconds": time.perf_counter() - start}
        except BaseException as err:
            out = {"error": f"{type(err).__name__}: {err}"}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    print(b"".join(chunks).decode() or json.dumps({"error": "the child died without a report"}), flush=True)
"""


def _job(cfg: object) -> dict:
    fields = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.__dict__.items()}
    return {"family": family_of(cfg), "fields": fields}


def measure(configs: list[object], groups: int = 2) -> list[tuple[float, float]]:
    """(peak-RSS increase in bytes over an import-only baseline, seconds) of a real run of each config (module
    docstring), ``groups`` subprocesses sharing them."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    share = [list(range(len(configs)))[g::groups] for g in range(groups)]
    procs = []
    for idx in share:
        jobs = [None, *(_job(configs[i]) for i in idx)]
        err = tempfile.TemporaryFile(mode="w+")
        procs.append((subprocess.Popen([sys.executable, "-c", ZYGOTE, json.dumps(jobs)], stdout=subprocess.PIPE,
                                       stderr=err, text=True, env=env), err))
    out: list[tuple[float, float]] = [(math.nan, math.nan)] * len(configs)
    try:
        for idx, (proc, err) in zip(share, procs, strict=True):
            stdout, _ = proc.communicate(timeout=600)
            err.seek(0)
            stderr = err.read()
            rows = [json.loads(line) for line in stdout.splitlines()]
            assert proc.returncode == 0 and len(rows) == len(idx) + 1, stderr[-3000:]
            errors = [row["error"] for row in rows if "error" in row]
            assert not errors, errors
            base = rows[0]["maxrss_kib"]
            for i, row in zip(idx, rows[1:], strict=True):
                out[i] = (1024.0 * (row["maxrss_kib"] - base), row["seconds"])
    finally:
        for proc, err in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            err.close()
    return out


def _cifar_data() -> bool:
    try:
        cifar_files.find_npz()
        return True
    except DataError:
        return False


@pytest.fixture(scope="module")
def measured() -> dict[str, float]:
    names = [k for k, cfg in CASES.items() if not isinstance(cfg, CifarConfig) or _cifar_data()]
    return {k: peak for k, (peak, _) in zip(names, measure([CASES[k] for k in names]), strict=True)}


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB and fork: Linux")
@pytest.mark.parametrize("name", list(CASES))
def test_estimate_bounds_the_measured_peak(name: str, measured: dict[str, float]) -> None:
    if name not in measured:
        pytest.skip("the CIFAR cat/horse npz (../shared/data/cifar10_cat_horse.npz) was not found")
    cfg, actual = CASES[name], measured[name]
    est = estimate_bytes(cfg, "cpu")
    assert actual > 80 * MB, f"{name}: the run raised the peak RSS by {actual / MB:.0f} MB only: too small to test"
    assert est >= actual, f"{name}: estimate {est / MB:.0f} MB < measured {actual / MB:.0f} MB"
    assert est <= FACTOR * actual + SLACK, (
        f"{name}: estimate {est / MB:.0f} MB > {FACTOR:g} × measured {actual / MB:.0f} MB + {SLACK / MB:.0f} MB")


def test_check_fits_message_names_sizes_estimate_and_limit() -> None:
    cfg = TwoLayerConfig(n=100_000_000)
    est = estimate_bytes(cfg, "cpu")
    with pytest.raises(ConfigError) as info:
        check_fits([TwoLayerConfig(), cfg], torch.device("cpu"), max_gb=8.0)
    msg = str(info.value)
    for part in ("two-layer", "d=50", "n=100000000", "n_test=2000", "width=256", "seeds=(0,)",
                 f"{est / GIB:.1f} GiB", "max_gb=8.0", f"max_gb={math.ceil(est / GIB):.1f}", "smaller n"):
        assert part in msg, (part, msg)
    with naming("flag"), pytest.raises(ConfigError) as info:
        check_fits(cfg, "cpu", max_gb=8)
    msg = str(info.value)
    for part in ("--d 50", "--n 100000000", "--n-test 2000", "--width 256", "--seeds 0", "--max-gb 8",
                 f"--max-gb {math.ceil(est / GIB)}", "smaller --n, --width or --d"):
        assert part in msg, (part, msg)
    cfg = TwoLayerConfig(d=100_000)  # ≈ 2.7 TiB: p = 2d + 3 features, p×p eigendecompositions
    with pytest.raises(ConfigError) as info:  # no max_gb: the machine's available memory is the limit
        check_fits(cfg, "cpu")
    limit = re.search(r"more than the ([0-9.]+) GiB available on cpu", str(info.value))
    assert limit and abs(float(limit.group(1)) * GIB - available_bytes("cpu")) < 0.2 * available_bytes("cpu")
    assert f"{estimate_bytes(cfg, 'cpu') / GIB:.1f} GiB" in str(info.value)


def test_check_fits_message_names_the_cifar_sizes() -> None:
    cfg = CifarConfig(arch="cnn", n=10_000, ntk_model=True, linear="fitted", seeds=(0, 1))
    with pytest.raises(ConfigError) as info:
        check_fits([cfg], "cpu", max_gb=1.0)
    msg = str(info.value)
    for part in ("CIFAR", "arch='cnn'", "n=10000", "n_test=2000", "width=512", "seeds=(0, 1)", "ntk_model=True",
                 "n_fit=256", f"{estimate_bytes(cfg, 'cpu') / GIB:.1f} GiB", "max_gb=1.0"):
        assert part in msg, (part, msg)
    with naming("flag"), pytest.raises(ConfigError) as info:
        check_fits([cfg], "cpu", max_gb=1.0)
    msg = str(info.value)
    for part in ("--arch 'cnn'", "--n 10000", "--seeds 0 1", "--ntk-model,", "--linear 'fitted'", "--n-fit 256",
                 "--max-gb 1"):
        assert part in msg, (part, msg)
    with pytest.raises(ConfigError) as info:
        check_fits([cfg.with_(ntk_model=False)], "cpu", max_gb=1.0)
    assert "ntk" not in str(info.value)


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, True, "8"])
def test_max_gb_must_be_a_finite_positive_number(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"max_gb=.*must be a finite number of GiB > 0"):
        check_fits([TwoLayerConfig()], "cpu", max_gb=bad)  # type: ignore[arg-type]
    with naming("flag"), pytest.raises(ConfigError, match=r"--max-gb .*must be a finite number"):
        check_fits([TwoLayerConfig()], "cpu", max_gb=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("cfg", [TwoLayerConfig(width=10**7), TwoLayerConfig(n=10**8),
                                 TwoLayerConfig(d=100_000, n=2_000, n_test=500, steps=1_000)],
                         ids=["width_1e7", "n_1e8", "d_1e5_quick"])
def test_huge_runs_are_refused_at_once_with_the_real_available_memory(cfg: TwoLayerConfig) -> None:
    cfg.validate()
    if estimate_bytes(cfg, "cpu") <= available_bytes("cpu"):
        pytest.skip(f"this machine has {available_bytes('cpu') / GIB:.0f} GiB available: the run may fit")
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"more than the [0-9.]+ GiB available on cpu"):
        check_fits([cfg], "cpu")
    assert time.perf_counter() - start < 0.5


def test_everyday_runs_pass_the_check() -> None:
    """The Fig 1 setting, the 1D CNN's and CIFAR's --quick sizes and the CIFAR FC default fit this machine."""
    check_fits([TwoLayerConfig(), Cnn1dConfig(n=500, n_test=200, width=64), CifarConfig(n=500, n_test=500, width=64),
                CifarConfig()], "cpu")
    assert estimate_bytes(TwoLayerConfig(), "cpu") < GIB


def test_estimate_grows_as_the_allocations_do() -> None:
    """Affine in n and in the width at fixed other sizes, with at least the slopes of the K×n×m step buffers
    (reference step: Z, φ(Z), φ′(Z) in float32) and the float64 data and feature matrices; quadratic in n with
    the exact NTK model (its n×n kernels)."""
    base = TwoLayerConfig(seeds=(0, 1), step="reference")
    est = [estimate_bytes(base.with_(n=n), "cpu") for n in (40_000, 80_000, 120_000)]
    assert est[2] - est[1] == est[1] - est[0]
    p = 2 * base.d + 3  # f^lin's features, both layers
    assert (est[1] - est[0]) / 40_000 >= 2 * (3 * 4 * base.width + 8 * (base.d + 3 * p))
    est = [estimate_bytes(base.with_(width=m), "cpu") for m in (1_024, 2_048, 3_072)]
    assert est[2] - est[1] == est[1] - est[0] and (est[1] - est[0]) / 1_024 >= 2 * 3 * 4 * base.n
    ntk = [estimate_bytes(CifarConfig(ntk_model=True, n=n), "cpu") for n in (2_500, 5_000, 10_000)]
    assert 3.5 < (ntk[2] - ntk[1]) / (ntk[1] - ntk[0]) < 4.2 and ntk[2] > 8 * 10_000**2 * 3
    assert estimate_bytes(base.with_(seeds=(0, 1, 2, 3)), "cpu") > 1.8 * estimate_bytes(base, "cpu") - OVERHEAD


@pytest.mark.skipif(not os.path.exists("/proc/meminfo"), reason="no /proc/meminfo")
def test_available_bytes_is_the_free_memory() -> None:
    phys = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < available_bytes("cpu") <= phys
    with open("/proc/meminfo", encoding="ascii") as fh:
        fields = dict(line.split(":", 1) for line in fh)
    expected = int(fields["MemAvailable"].split()[0]) * 1024
    assert abs(available_bytes(torch.device("cpu")) - expected) < 0.1 * expected
    if torch.cuda.is_available():
        free = torch.cuda.mem_get_info(0)[0]
        assert abs(available_bytes("cuda:0") - free) < 0.1 * free


def test_other_configs_have_no_estimate() -> None:
    with pytest.raises(ConfigError, match="no memory estimate for a NetworkConfig"):
        estimate_bytes(NetworkConfig())


def test_config_round_trip_of_the_cases() -> None:
    """The subprocess rebuilds each case from plain fields: the same config."""
    for cfg in CASES.values():
        job = _job(cfg)
        assert config_from_dict(job["family"], job["fields"]) == cfg

"""The kernel bound, measured (docs/theory.md §4): matrix-free Θ₁, Θ₂ matvecs and diagonals against the dense
closed form of :func:`tests.oracles.ntk_blocks`, the Lanczos spectral norm against ``eigvalsh``, the
d-dependence of ‖Θ − ΨΨᵀ‖/‖ΨΨᵀ‖, the exponent fit, and the command line. Float64 throughout."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from earlylin.activations import gaussian_constants, get_activation
from earlylin.bound.config import KernelBoundConfig
from earlylin.bound.lanczos import extreme_eig, lanczos_extreme
from earlylin.bound.measure import fit_exponents, measure_blocks, run_kernel_bound
from earlylin.bound.operator import BLOCKS, KernelDifference, TangentKernel, lin_norm, mirror_half
from earlylin.cli import kernel_bound as kernel
from earlylin.data.synthetic import make_dataset, tr_sigma2_over_d
from earlylin.linear.features import features
from earlylin.nets.two_layer import symmetric_init
from tests.conftest import TOL, assert_close
from tests.oracles import ntk_blocks

F64 = torch.float64


def _problem(d: int, n: int, m: int, seeds=(0, 1), symmetric: bool = True):
    X = torch.stack([torch.tensor(make_dataset(s, d, n, 1).x_train) for s in seeds])
    if symmetric:
        inits = [symmetric_init(s, m, d) for s in seeds]
        W = torch.stack([torch.tensor(w) for w, _ in inits])
        v = torch.stack([torch.tensor(b) for _, b in inits])
    else:  # a generic network: no mirror, v not ±1
        g = torch.Generator().manual_seed(7)
        W = torch.randn(len(seeds), m, d, generator=g, dtype=F64)
        v = torch.randn(len(seeds), m, generator=g, dtype=F64)
    return X, W, v


def _dense(name: str, X, W, v, block: str):
    act = get_activation(name)
    c = gaussian_constants(act)
    t1, t2 = ntk_blocks(act, W, v, X)
    theta = {"first": t1, "second": t2, "both": t1 + t2}[block]
    psi = features(X, c, c.nu(), block)
    A = theta - psi @ psi.transpose(-1, -2)
    off = A - torch.diag_embed(torch.diagonal(A, dim1=-2, dim2=-1))
    return theta, psi, A, off


@pytest.mark.parametrize("name", ["erf", "relu", "tanh"])
@pytest.mark.parametrize("symmetric", [True, False])
def test_matvec_and_diag_equal_dense_blocks(name, symmetric):
    X, W, v = _problem(d=9, n=70, m=48, symmetric=symmetric)
    op = TangentKernel(get_activation(name), X, W, v, chunk=5)  # several chunks, last one partial
    assert op.mirrored == symmetric and op.m == (24 if symmetric else 48)
    u = torch.randn(2, 3, 70, generator=torch.Generator().manual_seed(1), dtype=F64)
    for block in BLOCKS:
        theta, *_ = _dense(name, X, W, v, block)
        expect = (theta.unsqueeze(1) @ u.unsqueeze(-1)).squeeze(-1)
        scale = float(theta.abs().max())
        assert_close(op.matvec(u, block) / scale, expect / scale)
        assert_close(op.diag(block), torch.diagonal(theta, dim1=-2, dim2=-1))


def test_cache_off_and_auto_chunk_give_the_same_matvec():
    X, W, v = _problem(d=6, n=50, m=30)
    act = get_activation("gelu")
    u = torch.randn(2, 2, 50, generator=torch.Generator().manual_seed(2), dtype=F64)
    a = TangentKernel(act, X, W, v)
    b = TangentKernel(act, X, W, v, chunk=4, cache_elements=0)
    assert a.cache_ok and not b.cache_ok
    for block in BLOCKS:
        assert_close(a.matvec(u, block), b.matvec(u, block))
        assert_close(a.matvec(u, block), b.matvec(u, block))  # second call: from the cache


def test_mirror_half_detects_only_the_symmetric_init():
    _, W, v = _problem(d=5, n=10, m=8)
    assert mirror_half(W, v)[2]
    W2 = W.clone()
    W2[0, -1, 0] += 1e-9
    assert not mirror_half(W2, v)[2]
    assert not mirror_half(W[:, :7], v[:, :7])[2]  # odd width


@pytest.mark.parametrize("name", ["erf", "relu"])
@pytest.mark.parametrize("block", BLOCKS)
def test_spectral_norm_matches_eigvalsh(name, block):
    """Lanczos on the matrix-free Θ − ΨΨᵀ and on its off-diagonal part = dense eigvalsh, to 1e-8."""
    X, W, v = _problem(d=10, n=240, m=64)
    act = get_activation(name)
    c = gaussian_constants(act)
    _, psi, A, off = _dense(name, X, W, v, block)
    diff = KernelDifference(TangentKernel(act, X, W, v), psi, block, offdiag=(False, True))
    eig = extreme_eig(diff, tol=1e-11, max_iter=240)
    assert bool(eig.converged.all()) and float(eig.residual.max()) < TOL["eigensolver_tight"]
    for s, M in enumerate((A, off)):
        lam = torch.linalg.eigvalsh(M)
        dense = lam.abs().amax(-1)
        assert_close(eig.norm[:, s], dense, "eigensolver", atol=0)
        # the signed extreme eigenvalue, too
        signed = lam.gather(-1, lam.abs().argmax(-1, keepdim=True)).squeeze(-1)
        assert_close(eig.eigenvalue[:, s], signed, "eigensolver", atol=0)
    # ‖ΨΨᵀ‖ is exact; the diagonal is that of the dense difference
    assert_close(lin_norm(psi), torch.linalg.matrix_norm(psi @ psi.transpose(-1, -2), 2), "exact", atol=0)
    assert_close(diff.diagonal, torch.diagonal(A, dim1=-2, dim2=-1))
    res = measure_blocks(act, X, W, v, c, c.nu(), blocks=(block,), tol=1e-11, max_iter=240)[block]
    assert_close(res["ratio"], torch.linalg.eigvalsh(A).abs().amax(-1) / lin_norm(psi), "eigensolver", atol=0)
    assert_close(res["diag_max_abs"], torch.diagonal(A, dim1=-2, dim2=-1).abs().amax(-1))


def test_eigsh_route_agrees():
    X, W, v = _problem(d=8, n=120, m=32, seeds=(3,))
    act = get_activation("erf")
    _, psi, A, off = _dense("erf", X, W, v, "both")
    diff = KernelDifference(TangentKernel(act, X, W, v), psi, "both", offdiag=(False, True))
    eig = extreme_eig(diff, method="eigsh", tol=1e-12, max_iter=500)
    assert bool(eig.converged.all())
    dense = torch.stack([torch.linalg.eigvalsh(M).abs().amax(-1) for M in (A, off)], dim=-1)
    assert_close(eig.norm, dense, "eigensolver", atol=0)


@pytest.mark.parametrize("method", ["lanczos", "eigsh"])
def test_tiny_n_edge_case(method):
    """n = 3 < ARPACK's minimum Krylov size and ≤ the Lanczos step count: both routes still exact."""
    X, W, v = _problem(d=2, n=3, m=2, seeds=(0,))
    _, psi, A, off = _dense("relu", X, W, v, "both")
    diff = KernelDifference(TangentKernel(get_activation("relu"), X, W, v), psi, "both", offdiag=(False, True))
    eig = extreme_eig(diff, method=method, tol=1e-12)
    dense = torch.stack([torch.linalg.eigvalsh(M).abs().amax(-1) for M in (A, off)], dim=-1)
    assert_close(eig.norm, dense, "eigensolver_full", atol=0)


def test_lanczos_indefinite_and_low_rank():
    """Largest magnitude on a spectrum symmetric about 0 (where power iteration stalls), and a
    rank-3 operator (Lanczos breaks down after three steps and restarts)."""
    g = torch.Generator().manual_seed(5)
    n = 200
    Qm, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64))
    lam = torch.linspace(-1.0, 0.9, n, dtype=F64)
    lam[-1] = 0.999  # |−1| beats 0.999 by 1e-3
    A = (Qm * lam) @ Qm.T
    eig = lanczos_extreme(lambda u: u @ A, (1,), n, tol=1e-12, max_iter=n)
    assert float(eig.eigenvalue[0]) == pytest.approx(-1.0, rel=TOL["eigensolver_full"])
    B = torch.randn(n, 3, generator=g, dtype=F64)
    L = B @ torch.diag(torch.tensor([3.0, -5.0, 1.0], dtype=F64)) @ B.T
    eig = lanczos_extreme(lambda u: u @ L, (2,), n, tol=1e-10, max_iter=40)
    lam_l = torch.linalg.eigvalsh(L)
    expect = lam_l[lam_l.abs().argmax()]
    assert_close(eig.eigenvalue, expect.expand(2), "eigensolver_tight", atol=0)


def test_ratio_decreases_with_d():
    """‖Θ(0) − ΨΨᵀ‖/‖ΨΨᵀ‖ falls with d at n = ⌈d^{1.5}⌉, m = 16d², for Θ₁, Θ₂ and their sum — the
    proof's key step, through the matrix-free routine (compare tests/bound/test_closeness.py)."""
    act = get_activation("erf")
    c = gaussian_constants(act)
    ds = (8, 16, 32)
    ratios = np.zeros((len(ds), 3, 2))
    for i, d in enumerate(ds):
        X, W, v = _problem(d, math.ceil(d**1.5), 16 * d * d)
        res = measure_blocks(act, X, W, v, c, c.nu(), tol=1e-6, max_iter=200)
        for j, block in enumerate(BLOCKS):
            ratios[i, j] = res[block]["ratio"].numpy()
            assert bool(res[block]["converged"].all())
    points = [(d, math.ceil(d**1.5), 16 * d * d) for d in ds]
    for j in range(3):
        fit = fit_exponents(points, ratios[:, j])
        assert fit["columns"] == ["d"] and fit["tied"] == ["n", "m"]
        assert fit["of_seed_mean"]["d"] < -0.15, (fit, ratios)
    assert np.all(ratios.mean(axis=2)[-1] < 0.3), ratios


def test_run_uses_the_seeds_data_init_and_anisotropic_nu():
    """A record row equals the dense computation on make_dataset / symmetric_init of that seed, with
    ν = E[gφ′(g)]·√(Tr Σ²/d) for an anisotropic Σ (relu, so ν ≠ 0)."""
    cfg = KernelBoundConfig(ds=(6,), ns=(40,), widths=(24,), activation="relu", sigma="decay", seeds=(1, 4),
                            tol=1e-12, max_iter=40, device="cpu")
    rec = run_kernel_bound(cfg)
    act = get_activation("relu")
    c = gaussian_constants(act)
    for seed in (1, 4):
        data = make_dataset(seed, 6, 40, 1, "decay")
        X = torch.tensor(data.x_train)
        W, v = (torch.tensor(a) for a in symmetric_init(seed, 24, 6))
        t1, t2 = ntk_blocks(act, W, v, X)
        for block, theta in (("first", t1), ("second", t2), ("both", t1 + t2)):
            psi = features(X, c, c.nu(tr_sigma2_over_d(data.spectrum)), block)
            A = theta - psi @ psi.T
            row = next(r for r in rec["rows"] if r["seed"] == seed and r["block"] == block)
            dense, lin = float(torch.linalg.eigvalsh(A).abs().max()), float(torch.linalg.matrix_norm(psi @ psi.T, 2))
            assert row["diff_norm"] == pytest.approx(dense, rel=TOL["eigensolver"])
            assert row["lin_norm"] == pytest.approx(lin, rel=TOL["eigensolver_full"])
    assert rec["constants"]["nu"] == pytest.approx(c.nu(tr_sigma2_over_d(data.spectrum)))


def test_fit_exponents_recovers_a_power_law():
    pts = [(d, n, m) for d in (10, 20, 40) for n in (100, 300) for m in (64, 256)]
    vals = np.array([[3.0 * d**-0.7 * n**0.2 * m**-0.5 * f for f in (1.0, 2.0)] for d, n, m in pts])
    fit = fit_exponents(pts, vals)
    assert fit["columns"] == ["d", "n", "m"] and fit["fixed"] == [] and fit["tied"] == []
    for p in [*fit["per_seed"], fit["mean"], fit["of_seed_mean"]]:
        assert p == pytest.approx({"d": -0.7, "n": 0.2, "m": -0.5}, abs=TOL["lstsq"])
    assert fit["std"] == pytest.approx({"d": 0.0, "n": 0.0, "m": 0.0}, abs=TOL["lstsq"])
    tied = fit_exponents([(d, 2 * d**2, 64) for d in (10, 20, 40)], np.array([[d**-0.3] for d in (10, 20, 40)]))
    assert tied["columns"] == ["d"] and tied["tied"] == ["n"] and tied["fixed"] == ["m"]
    assert tied["mean"]["d"] == pytest.approx(-0.3)
    single = fit_exponents([(10, 100, 64)], np.array([[0.5, 0.6]]))
    assert single["columns"] == [] and single["mean"] == {}


SMALL = ["--d", "6", "10", "--n", "40", "--width", "24", "--seeds", "0", "1", "--device", "cpu", "--quiet"]


def test_cli_writes_record_and_table(tmp_path, capsys):
    code = kernel.main([*SMALL, "--activation", "relu", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    rec = json.loads((tmp_path / "record.json").read_text())
    assert rec["kind"] == "kernel_bound" and rec["schema"].startswith("earlylin.record/")
    assert {"torch", "device", "dtype"} <= set(rec["environment"]) and rec["environment"]["dtype"] == "float64"
    assert rec["config"]["grid"] == [[6, 40, 24], [10, 40, 24]]
    assert len(rec["rows"]) == 2 * 2 * 3  # d × seeds × blocks
    row = rec["rows"][0]
    for key in ("d", "n", "m", "seed", "block", "diff_norm", "lin_norm", "ratio", "offdiag_norm", "offdiag_ratio",
                "diag_max_abs", "iterations", "residual", "converged"):
        assert key in row
    assert row["ratio"] == pytest.approx(row["diff_norm"] / row["lin_norm"])
    slope = rec["summary"]["slope_by_block"]
    assert set(slope) == set(BLOCKS) and all(np.isfinite(s["mean"]) for s in slope.values())
    assert slope["first"]["fixed"] == ["n", "m"]
    assert "log-log exponent of the ratio vs d [first]" in out and "‖Θlin‖" in out


def test_cli_scaled_grid(tmp_path, capsys):
    code = kernel.main(["--d", "6", "12", "--n-scale", "1", "--alpha", "0.5", "--width-scale", "4",
                        "--width-alpha", "0", "--blocks", "second", "--seeds", "2", "--quiet", "--device", "cpu",
                        "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr()
    rec = json.loads((tmp_path / "record.json").read_text())
    assert rec["config"]["grid"] == [[6, 15, 24], [12, 42, 48]]
    assert rec["summary"]["slope_by_block"]["second"]["tied_to_d"] == ["n", "m"]
    assert rec["summary"]["slope_by_block"]["second"]["std"] == 0.0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--d", "0"], "--d 0"),
        (["--d", "8", "8"], "--d [8, 8]"),
        (["--n", "1"], "--n 1"),
        (["--n", "50", "--n-scale", "2"], "--n-scale"),
        (["--width", "63"], "--width 63 is odd"),
        (["--width", "64", "--width-scale", "2"], "--width-scale"),
        (["--n", "50", "--width", "64", "--alpha", "0.2"], "--alpha 0.2"),
        (["--alpha", "3"], "--alpha 3"),
        (["--alpha", "nan"], "--alpha nan"),
        (["--n-scale", "0"], "--n-scale 0"),
        (["--n-scale", "1e-9"], "--n-scale"),
        (["--activation", "swish"], "--activation 'swish'"),
        (["--sigma", "round"], "--sigma 'round'"),
        (["--blocks", "third"], "--blocks 'third'"),
        (["--seeds", "1", "1"], "--seeds"),
        (["--seeds", "-1"], "--seeds -1"),
        (["--method", "power"], "--method 'power'"),
        (["--tol", "0"], "--tol 0"),
        (["--max-iter", "1"], "--max-iter 1"),
        (["--chunk", "0"], "--chunk 0"),
        (["--device", "tpu"], "--device 'tpu'"),
        (["--n", "20000", "--max-gb", "0.01"], "--max-gb"),
    ],
)
def test_cli_bad_input_exits_2_before_work(tmp_path, capsys, args, needle):
    base = ["--d", "6", "--seeds", "0", "--quiet", "--out", str(tmp_path)]
    code = kernel.main([*base, *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert needle in err
    assert not (tmp_path / "record.json").exists()


def test_cli_unparsable_value_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        kernel.main(["--d", "ten", "--out", str(tmp_path)])
    assert exc.value.code == 2 and "--d" in capsys.readouterr().err


def test_cli_cuda_without_gpu(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    code = kernel.main(["--d", "6", "--device", "cuda", "--quiet", "--out", str(tmp_path)])
    assert code == 2 and "--device 'cuda': no CUDA device" in capsys.readouterr().err


def test_config_memory_estimate_counts_the_krylov_basis():
    cfg = KernelBoundConfig(ds=(50,), ns=(20_000,), widths=(256,), seeds=(0, 1), max_iter=300)
    gb = cfg.memory_bytes(50, 20_000, 256) / 2**30
    assert 0.15 < gb < 2.0  # 2 seeds × 2 variants × 302 × 20,000 floats ≈ 0.18 GB, plus buffers

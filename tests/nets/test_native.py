"""The compiled erf of the fast CPU step (earlylin.nets.native, erf.c) against float64: erf within 1 ulp and
φ′ = (2/√π)e^{−z²} within 2 ulp (0 where it is below float32's normal range) on 2·10⁷ points and the special
values; the fused readout (f, r, Hᵀr, φ′ in
place) against the same sums in float64; the constants against their fit (erf_fit.py); the build kept once per
machine and reused; and the fall-back to torch, with its reason, where it cannot be built or is turned off."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from earlylin.nets import native
from earlylin.nets.native import erf_fit
from tests.conftest import ROOT, assert_close

pytestmark = pytest.mark.skipif(not native.available(), reason=f"no compiled erf here: {native.unavailable_reason()}")

ERF_ULP, DPHI_ULP = 1.0, 2.0  # the bounds erf.c states (measured 0.98 and 1.80 on this grid)
NORMAL_HI = 87.0  # erf.c: z² at or beyond it gives φ′ = 0 (exactly below 2e-38)


def _ulps(got: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """|got − exact| in units of the float32 spacing at exact (the smallest subnormal below it)."""
    spacing = torch.from_numpy(np.spacing(exact.float().abs().numpy())).double()
    return (got.double() - exact).abs() / spacing


def _points() -> torch.Tensor:
    dense = torch.linspace(0.0, 11.0, 10_000_001, dtype=torch.float64).float()
    tiny = torch.logspace(-44, 0, 20_001, dtype=torch.float64).float()  # subnormals up to 1
    special = torch.tensor([0.0, 1.0, 4.0, 9.3, 1e30, math.inf])
    z = torch.cat([dense, tiny, special])
    return torch.cat([z, -z])


def test_erf_and_dphi_are_within_their_ulp_bounds_of_float64():
    z = _points()
    phi, dphi = torch.empty_like(z), torch.empty_like(z)
    native.erf_dphi(z, phi, dphi)
    exact_phi = torch.erf(z.double())
    exact_dphi = 2.0 / math.sqrt(math.pi) * torch.exp(-z.double() ** 2)
    assert _ulps(phi, exact_phi).max().item() <= ERF_ULP
    normal = z * z < NORMAL_HI  # in float32, as the kernel squares
    assert _ulps(dphi[normal], exact_dphi[normal]).max().item() <= DPHI_ULP
    assert (dphi[~normal] == 0).all() and (exact_dphi[~normal] < 2e-38).all()
    assert torch.equal(phi[z.abs() >= 4.0], torch.sign(z[z.abs() >= 4.0]))  # erf rounds to ±1 there
    assert torch.equal(phi[z == 0], z[z == 0]) and (dphi[z.isinf()] == 0).all()
    nan = torch.tensor([math.nan] * 3)
    native.erf_dphi(nan, out := torch.empty(3), None)
    assert out.isnan().all()


def test_in_place_and_phi_only_give_the_same_bits():
    z = torch.randn(5000, generator=torch.Generator().manual_seed(0)) * 2
    phi, dphi = torch.empty_like(z), torch.empty_like(z)
    native.erf_dphi(z, phi, dphi)
    phi_only = torch.empty_like(z)
    native.erf_dphi(z, phi_only, None)
    z_in_place, phi_2 = z.clone(), torch.empty_like(z)
    native.erf_dphi(z_in_place, phi_2, z_in_place)
    assert torch.equal(phi_only, phi) and torch.equal(phi_2, phi) and torch.equal(z_in_place, dphi)


@pytest.mark.parametrize(("rows", "m"), [(37, 256), (5, 24), (3, 7)])  # m not a multiple of the 16 lanes too
@pytest.mark.parametrize("grad_W", [True, False])
def test_readout_is_the_two_layer_blocks_sums(rows, m, grad_W):
    """f = φ(Z)v·s, r = f − y, gv = φ(Z)ᵀr, and for ∇_W φ′(Z) in place and r ⊙ X, against the same in float64
    from the float64 erf: to fp32 rounding of sums of m (f) and rows (gv) terms (TOL fp32)."""
    g = torch.Generator().manual_seed(rows * m)
    z, v, y = torch.randn(rows, m, generator=g), torch.randn(m, generator=g), torch.randn(rows, generator=g)
    x = torch.randn(rows, 5, generator=g)
    scale = 1.0 / math.sqrt(m)
    f, r, gv, h, zz = torch.empty(rows), torch.empty(rows), torch.randn(m, generator=g), torch.empty(m), z.clone()
    rx = torch.empty_like(x) if grad_W else None
    native.erf_readout(zz, v, y, scale, f, r, gv, x if grad_W else None, rx, h)
    H = torch.erf(z.double())
    f64 = H @ v.double() * scale
    assert_close(f, f64, "fp32")
    assert_close(r, f64 - y.double(), "fp32")
    assert_close(gv, H.T @ r.double(), "fp32")  # gv is set, not added to
    assert_close(zz, 2.0 / math.sqrt(math.pi) * torch.exp(-z.double() ** 2) if grad_W else z.double(), "fp32")
    if grad_W:
        assert torch.equal(rx, x * r.unsqueeze(-1))  # one float32 product each
    f2, r2 = torch.empty(rows), torch.empty(rows)
    native.erf_readout(z.clone(), v, y, scale, f2, r2, None, None, None, h)  # φ only: f and r the same bits
    assert torch.equal(f2, f) and torch.equal(r2, r)


def test_the_constants_are_the_fit_rounded_to_float32():
    """erf.c's arrays are erf_fit.fit()'s coefficients rounded to float32 (to a last bit: the fit's float64 LAPACK
    sums may round the other way on another machine), and each fit's error is the one erf.c states."""
    source = (ROOT / "earlylin" / "nets" / "native" / "erf.c").read_text()
    for name, (coef, err) in erf_fit.fit().items():
        match = re.search(rf"static const float {name}\[\d+\] = {{([^}}]*)}};", source)
        assert match is not None, name
        written = np.array([float.fromhex(c.strip().rstrip("f")) for c in match.group(1).split(",")])
        assert written.shape == coef.shape
        np.testing.assert_allclose(written, coef.astype(np.float32), rtol=2.0**-22, atol=0)
        what = "error put into erf" if name == "R" else "relative error"
        stated = re.search(rf"/\* {name}: degree \d+, largest {what} ([0-9.e+-]+)", source)
        assert stated is not None and err <= 1.05 * float(stated.group(1)) and err < 3e-9, (name, err)


def _child(env: dict[str, str], code: str, stderr: list[str] | None = None) -> str:
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    if stderr is not None:
        stderr.append(proc.stderr)
    return proc.stdout.strip()


REPORT = ("from earlylin.nets import native\n"
          "print(native.available(), '|', native.unavailable_reason())")


def test_the_build_is_kept_per_machine_and_reused(tmp_path):
    env = {**os.environ, "EARLYLIN_MACHINE_DIR": str(tmp_path)}
    assert _child(env, REPORT) == "True | None"
    (built,) = tmp_path.glob("erf-*.so")
    stamp = built.stat().st_mtime_ns
    assert _child(env, REPORT) == "True | None"
    assert [p.name for p in tmp_path.glob("erf-*.so")] == [built.name] and built.stat().st_mtime_ns == stamp
    assert not list(tmp_path.glob(".erf-*"))  # no temporary left behind


@pytest.mark.parametrize(("change", "reason"), [
    ({"EARLYLIN_NATIVE": "0"}, "EARLYLIN_NATIVE=0"),
    ({"CC": "false"}, "false -std=c99"),  # a compiler that fails: its command named, for both flag sets
    ({"PATH": ""}, "no C compiler found"),
])
def test_without_the_kernel_the_step_falls_back_to_torch_and_says_why(tmp_path, change, reason):
    """No kernel: the step's φ is torch's, the reason is given, and a build that could not be made is said in one
    line on stderr (not when the user turned the kernel off); nothing is left in the machine folder."""
    env = {**os.environ, "EARLYLIN_MACHINE_DIR": str(tmp_path), **change}
    code = REPORT + (
        "\nimport json, torch\nfrom earlylin.activations import get_activation\n"
        "from earlylin.nets import two_layer as nets\n"
        "X, y = torch.randn(1, 50, 4), torch.randn(1, 50)\n"
        "step = nets.BlockedTwoLayerStep(get_activation('erf'), X, y, True, True)\n"
        "print(json.dumps(nets.step_info('fast', **nets.fast_choices(step, 8))))")
    err: list[str] = []
    out = _child(env, code, err).splitlines()
    assert out[0].startswith("False |") and reason in out[0]
    said = [line for line in err[0].splitlines() if "compiled erf is not available" in line]
    assert len(said) == (0 if "EARLYLIN_NATIVE" in change else 1)  # a failed build is said once; a choice is not
    assert json.loads(out[1])["phi"] == "torch"
    assert not list(tmp_path.glob("erf-*.so")) and not list(tmp_path.glob(".erf-*"))

"""Where the constants of ``erf.c`` come from: three polynomials fitted in float64 (docs/theory.md §1.2).

    |x| < 1:   erf(x) = x + x·S(x²),                      S(t) ≈ erf(√t)/√t − 1,                    degree 6
    |x| ≥ 1:   erf(x) = sign(x)·(1 − φ′(x)·R(min(|x|, 4))),  R(x) ≈ (√π/2)·erfcx(x), in x − 5/2 on [1, 4], degree 8
    φ′(x) = (2/√π)·e^{−x²} = 2^k·E(r),  x² = h + l,  k = round(−h·log₂e),  r = −h − k·ln 2 − l,
                                                           E(r) ≈ (2/√π)·e^r on |r| ≤ ln(2)/2,        degree 7

(erfcx(x) = e^{x²}·erfc(x).) S and E are fitted for their relative error, the error of erf(x) and φ′(x) relative to
their values; R for the error it puts into erf, φ′·|R − R_exact| = erfc(x)·|R/R_exact − 1|, which is what the
sum 1 − φ′R keeps (beyond x = 4, erfc(x) < 2e-8 and erf rounds to ±1 in float32 whatever R is). Each fit is a
weighted least-squares fit on a dense grid whose weights are updated (Lawson's iteration) until the largest
weighted error is nearly level; the reference values are scipy's float64 erf, erfc and erfcx (relative error
≈ 1e-16, far below the fits'). The fitted coefficients are then rounded to float32, the precision the kernel
computes in. Run ``python -m earlylin.nets.native.erf_fit`` to print the C arrays and each fit's error; the
tests (tests/nets/test_native.py) refit and check the errors and the kernel's accuracy in ulps.
"""

from __future__ import annotations

import math
import re

import numpy as np
from scipy import special

SPLIT = 1.0  # |x| below: the odd series x + x·S(x²); above: 1 − φ′(x)·R(1/|x|)
CLAMP_HI = 104.0  # x² above this: φ′ = 0 in float32 (e^{−104} ≈ 7e-46 is below the smallest subnormal)
DEGREES = {"S": 6, "R": 8, "E": 7}
R_CENTRE, R_TOP = 2.5, 4.0  # R is a polynomial in x − R_CENTRE on [SPLIT, R_TOP]
GRID = 4000
ITERATIONS = 300


def lawson(basis: np.ndarray, target: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, float]:
    """Coefficients c minimising max |weight·(basis @ c − target)| approximately (Lawson's reweighted least
    squares), and that maximum."""
    w = np.full(len(target), 1.0 / len(target))
    coef = np.zeros(basis.shape[1])
    for _ in range(ITERATIONS):
        sw = np.sqrt(w) * weight
        coef = np.linalg.lstsq(basis * sw[:, None], target * sw, rcond=None)[0]
        err = np.abs((basis @ coef - target) * weight)
        w = w * err + 1e-300
        w /= w.sum()
    return coef, float(np.max(np.abs((basis @ coef - target) * weight)))


def fit() -> dict[str, tuple[np.ndarray, float]]:
    """name → (coefficients, lowest power first; the fit's largest error in float64: relative for S and E, the
    absolute error it puts into erf for R)."""
    x = np.linspace(1e-4, SPLIT, GRID)
    s_coef, s_err = lawson(np.vander(x * x, DEGREES["S"] + 1, increasing=True), special.erf(x) / x - 1.0,
                           x / special.erf(x))  # the error of x·S relative to erf(x)
    x = np.linspace(SPLIT, R_TOP, GRID)
    r_target = 0.5 * math.sqrt(math.pi) * special.erfcx(x)
    r_coef, r_err = lawson(np.vander(x - R_CENTRE, DEGREES["R"] + 1, increasing=True), r_target,
                           special.erfc(x) / r_target)
    r = np.linspace(-0.505 * math.log(2.0), 0.505 * math.log(2.0), GRID)
    e_target = 2.0 / math.sqrt(math.pi) * np.exp(r)
    e_coef, e_err = lawson(np.vander(r, DEGREES["E"] + 1, increasing=True), e_target, 1.0 / e_target)
    return {"S": (s_coef, s_err), "R": (r_coef, r_err), "E": (e_coef, e_err)}


def c_array(name: str, coef: np.ndarray) -> str:
    """A C array of the coefficients rounded to float32, as exact hexadecimal literals."""
    values = ", ".join(re.sub(r"\.?0+p", "p", float(np.float32(c)).hex()) + "f" for c in coef)
    return f"static const float {name}[{len(coef)}] = {{{values}}};"


def main() -> None:
    for name, (coef, err) in fit().items():
        what = "error put into erf" if name == "R" else "relative error"
        print(f"/* {name}: degree {len(coef) - 1}, largest {what} {err:.2e} before rounding to float32 */")
        print(c_array(name, coef))


if __name__ == "__main__":
    main()

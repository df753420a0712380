"""The width split of the early closeness, measured: f_net − f^lin = (f_net − f^lin_fw) + (f^lin_fw − f^lin).

The second layer alone, where the network is exactly kernel GD with fixed hidden features, so every
trajectory is closed form (:mod:`earlylin.linear.finite_width`, docs/theory.md §4). ``python -m
earlylin.experiments.width_split [activation ...]`` prints the table.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from earlylin.activations import gaussian_constants, get_activation
from earlylin.config import early_window
from earlylin.data.synthetic import make_dataset, tr_sigma2_over_d
from earlylin.experiments.comparison import mse
from earlylin.linear.features import features
from earlylin.linear.finite_width import finite_width_features, svd_trajectory
from earlylin.linear.trajectory import LinearTrajectory
from earlylin.nets.two_layer import symmetric_init


def width_split(
    widths: tuple[int, ...] = (256, 1024, 4096),
    d: int = 50,
    n: int = 2000,
    n_test: int = 1000,
    activation: str = "erf",
    lr: float = 1.0,
    window_c: float = 5.0,
    seeds: tuple[int, ...] = (0, 1),
    n_steps: int = 30,
) -> list[dict[str, float]]:
    """Second layer alone: max over the early window T = c·d·log d/η of the test MSE between the
    network and f^lin (infinite width) and f^lin_fw (finite width), seed-mean, for each width.

    The network with only v trained has fixed hidden features H = φ(XWᵀ/√d) and f(v₀) = 0 (symmetric
    init), so f_t = (H/√m)(v_t − v₀) is GD from zero on the features H/√m: computed in closed form by
    :func:`svd_trajectory`, no training loop. Same data and init as :mod:`earlylin.experiment`.
    Returns rows {m, sqrt_d_over_m, mse_lin, mse_fw, mse_lin_fw}.
    """
    act = get_activation(activation)
    consts = gaussian_constants(act)
    data = [make_dataset(s, d, n, n_test) for s in seeds]
    tr = tr_sigma2_over_d(data[0].spectrum)
    nu, nu2 = consts.nu(tr), consts.nu2(tr)

    def stack(arrays: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(arrays)).double()

    X, Xt = stack([b.x_train for b in data]), stack([b.x_test for b in data])
    y = stack([b.y_train for b in data])
    window = early_window(d, lr, window_c)
    steps = torch.unique(torch.round(torch.logspace(0, math.log10(window), n_steps)).long())
    lin = LinearTrajectory.fit(features(X, consts, nu, "second", nu2=nu2), y, lr)
    ft_lin = lin.outputs(features(Xt, consts, nu, "second", nu2=nu2), steps)
    rows = []
    for m in widths:
        inits = [symmetric_init(s, m, d) for s in seeds]
        W, v = stack([w for w, _ in inits]), stack([v for _, v in inits])
        H, Ht = (act.phi(A @ W.transpose(-1, -2) / math.sqrt(d)) / math.sqrt(m) for A in (X, Xt))
        ft_net = svd_trajectory(H, y, lr).outputs(Ht, steps)
        fw = LinearTrajectory.fit(finite_width_features(X, W, v, consts, nu, "second", nu2=nu2), y, lr)
        ft_fw = fw.outputs(finite_width_features(Xt, W, v, consts, nu, "second", nu2=nu2), steps)
        rows.append({
            "m": m,
            "sqrt_d_over_m": math.sqrt(d / m),
            "mse_lin": float(mse(ft_net, ft_lin).amax(-1).mean()),
            "mse_fw": float(mse(ft_net, ft_fw).amax(-1).mean()),
            "mse_lin_fw": float(mse(ft_fw, ft_lin).amax(-1).mean()),
        })
    return rows


if __name__ == "__main__":  # pragma: no cover - a measurement, not a test
    import sys

    for act_name in sys.argv[1:] or ["erf"]:
        print(f"activation={act_name}  (second layer, d=50, n=2000, n_test=1000, lr=1, seeds 0,1)")
        print(f"{'m':>6} {'√(d/m)':>8} {'MSE(net,lin)':>13} {'MSE(net,fw)':>12} {'MSE(fw,lin)':>12}")
        for r in width_split(activation=act_name):
            print(
                f"{r['m']:>6} {r['sqrt_d_over_m']:>8.3f} {r['mse_lin']:>13.3e} {r['mse_fw']:>12.3e}"
                f" {r['mse_lin_fw']:>12.3e}"
            )

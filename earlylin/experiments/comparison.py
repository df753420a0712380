"""How close the network stays to its linear model: MSE, relative MSE, V_lin split, escape step.

All functions take tensors with the seed axis first and return one value per seed.

- MSE(f, g) = (1/n) Σ_i (f(x_i) − g(x_i))²                              (docs/theory.md §4); for C outputs
  (f (K, n, C)) the squares are summed over the outputs, and ``*_per_output`` keeps each output's own
- losses: the run's (:mod:`earlylin.training.losses`, squared by default); class error and the label agreement
  of net and linear model from sign(f) for one output, argmax_c f_c for C
- relative MSE = MSE(f_net, f_lin) / ((1/n) Σ_i f_net(x_i)²), undefined (NaN) while the network
  output is zero up to rounding, i.e. mean f_net² ≤ 1e-12 (step 0 of a symmetric initialisation)
- V_lin = column span of the linear model's test feature matrix Ψ_test, P its orthogonal projector;
  a residual r = f − y splits as ‖Pr‖²/n + ‖(I − P)r‖²/n (docs/theory.md §5, Fig 3a). A linear model's
  V_lin⊥ part is −(I − P)y at every step; the network's falls only once it goes beyond linear.
- μ_Y(F; L) = I(F; Y) − I(F; Y | L) of the sign predictions (Kalimeris et al. 2019,
  :mod:`earlylin.experiments.mu`): how much of what the network's predictions say about the labels the linear
  model's predictions already explain.
- early window T = c·d·log(d)/η (docs/theory.md §4) and the escape step: the first recorded step after T
  at which the test MSE(net, f_lin) exceeds ``escape_factor`` × its value at T.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from earlylin.errors import ConfigError
from earlylin.experiments.mu import mu_labels, mu_terms
from earlylin.linear.iterated import IteratedLinear
from earlylin.linear.trajectory import LinearTrajectory, stability_bound
from earlylin.runtime.records import to_jsonable
from earlylin.training.losses import loss as train_loss

ZERO_OUTPUT = 1e-12  # mean f² at or below this is an all-zero output up to fp32 rounding


def mse(f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """(1/n) Σ_i (f_i − g_i)² over the last axis: f, g (…, n)."""
    return torch.mean((f - g) ** 2, dim=-1)


def output_mse(f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """MSE per seed of outputs (K, n), or (K, n, C) with the squares summed over the C outputs."""
    return mse(f, g) if f.ndim == 2 else torch.mean(((f - g) ** 2).sum(-1), dim=-1)


def relative_mse(f_net: torch.Tensor, f_lin: torch.Tensor) -> torch.Tensor:
    """MSE(net, lin) / mean(f_net²) (squares summed over outputs); NaN where mean f_net² ≤ 1e-12 (the output is
    zero up to rounding)."""
    denom = output_mse(f_net, torch.zeros_like(f_net))
    ok = denom > ZERO_OUTPUT
    return torch.where(ok, output_mse(f_net, f_lin) / torch.where(ok, denom, 1.0), math.nan)


def labels(f: torch.Tensor) -> torch.Tensor:
    """Predicted labels: sign(f) (f = 0 counts as +1) for outputs (K, n); argmax over outputs for (K, n, C)."""
    return torch.where(f >= 0, 1, -1) if f.ndim == 2 else torch.argmax(f, dim=-1)


def class_error(f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction of points where the predicted label of f differs from y's (:func:`labels`)."""
    return torch.mean((labels(f) != labels(y)).to(f.dtype), dim=-1)


def label_agreement(f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Fraction of points where f and g predict the same label."""
    return torch.mean((labels(f) == labels(g)).double(), dim=-1)


class VlinSplit:
    """Orthogonal split of test residuals onto V_lin = span(Ψ_test) and its complement."""

    def __init__(self, psi_test: torch.Tensor, rtol: float = 1e-10) -> None:
        U, S, _ = torch.linalg.svd(psi_test.double(), full_matrices=False)
        keep = S > rtol * S[..., :1]  # columns above the numerical rank tolerance
        self.Q = U * keep.unsqueeze(-2)  # (K, n, p) with zeroed columns beyond the rank
        self.rank = keep.sum(-1)

    def split(self, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(‖P r‖²/n, ‖(I − P) r‖²/n) per seed for residuals r (K, n), or (K, n, C): each output column projected,
        the squares summed over outputs."""
        r = residual.double()
        if r.ndim == 3:
            n = r.shape[1]
            par = self.Q @ (self.Q.transpose(-1, -2) @ r)
            return torch.sum(par**2, (-1, -2)) / n, torch.sum((r - par) ** 2, (-1, -2)) / n
        n = r.shape[-1]
        coef = (self.Q.transpose(-1, -2) @ r.unsqueeze(-1)).squeeze(-1)
        par = (self.Q @ coef.unsqueeze(-1)).squeeze(-1)
        return torch.sum(par**2, -1) / n, torch.sum((r - par) ** 2, -1) / n


def escape_step(steps: Sequence[int], test_mse: Sequence[float], window: int, factor: float) -> int | None:
    """First recorded step > T with test MSE > factor × (test MSE at T), or None if never.

    ``steps`` must contain T itself (the recording schedule always adds it). NaN values never count.
    """
    if window not in steps:
        return None
    ref = test_mse[list(steps).index(window)]
    for s, value in zip(steps, test_mse, strict=True):
        if s > window and value > factor * ref:
            return int(s)
    return None


N_LOGITS = 5  # test points whose outputs are recorded (Fig 1b)


class LinearComparison:
    """Everything the network is compared with: f^lin, the stripped model and optionally the
    finite-width model (:mod:`earlylin.linear.finite_width`) — closed-form trajectories in float64 — the
    labels and the V_lin split. :meth:`row` gives one recorded step."""

    def __init__(
        self,
        psi: tuple[torch.Tensor, torch.Tensor],
        psi_stripped: tuple[torch.Tensor, torch.Tensor],
        y: torch.Tensor,
        y_test: torch.Tensor,
        lr: float,
        psi_fw: tuple[torch.Tensor, torch.Tensor] | None = None,
        psi_ntk_inf: tuple[torch.Tensor, torch.Tensor] | None = None,
        psi_ablations: dict[str, tuple[torch.Tensor, torch.Tensor] | None] | None = None,
        bound: torch.Tensor | None = None,
        loss: str = "squared",
        iterated: bool = False,
        classification: bool | None = None,
    ) -> None:
        """``psi_ablations``: name → (train, test) features of an f^lin ablation (Fig 2: ``no_norm``,
        ``no_const``), or None where the ablation is f^lin itself; each adds train_loss_<name>,
        test_loss_<name> and test_mse_<name> (MSE to the net) to every row. ``bound``: the stability bound
        of ``psi`` where the caller has it already (:func:`earlylin.linear.trajectory.stability_bound`).
        ``y`` (K, n), or (K, n, C) for C outputs. ``loss``: the run's (:mod:`earlylin.training.losses`).
        ``iterated``: f^lin and the stripped model train in the network's loop
        (:class:`earlylin.linear.iterated.IteratedLinear`; their β are :attr:`trained`) instead of in closed form
        — for a loss other than squared or an optimizer other than full-batch GD. ``classification`` (default: K
        outputs or cross-entropy): the targets are labels; adds the label agreement and I(F; Y) of μ."""
        self.psi_ab = psi_ablations or {}
        if iterated and (self.psi_ab or psi_fw is not None or psi_ntk_inf is not None):
            raise ConfigError("the finite-width, exact-NTK and ablation models train in closed form: only with "
                              "squared loss and full-batch GD")
        self.loss_name, self.iterated = loss, iterated
        self.ablated = {k: LinearTrajectory.fit(p[0], y.double(), lr) for k, p in self.psi_ab.items() if p is not None}
        self.psi, self.psi_s, self.psi_fw, self.psi_inf = psi, psi_stripped, psi_fw, psi_ntk_inf
        self.inf = LinearTrajectory.fit(psi_ntk_inf[0], y.double(), lr) if psi_ntk_inf is not None else None
        self.fw = LinearTrajectory.fit(psi_fw[0], y.double(), lr) if psi_fw is not None else None
        self.y, self.yt = y.double(), y_test.double()
        self.classes = None if self.y.ndim == 2 else int(self.y.shape[-1])
        self.classification = (self.classes is not None or loss != "squared") if classification is None \
            else classification
        self.bound = stability_bound(psi[0]) if bound is None else bound
        self.lin: LinearTrajectory | IteratedLinear = (IteratedLinear(psi[0], self.y, loss) if iterated
                                                       else LinearTrajectory.fit(psi[0], self.y, lr))
        self.stripped: LinearTrajectory | IteratedLinear = (IteratedLinear(psi_stripped[0], self.y, loss) if iterated
                                                            else LinearTrajectory.fit(psi_stripped[0], self.y, lr))
        self.vsplit = VlinSplit(psi[1])

    @property
    def trained(self) -> list[IteratedLinear]:
        """The linear models that train in the network's loop (empty for the closed form)."""
        return [self.lin, self.stripped] if self.iterated else []  # type: ignore[list-item]

    def _at(self, model: LinearTrajectory | IteratedLinear, psi: torch.Tensor, t: int) -> torch.Tensor:
        if isinstance(model, IteratedLinear):
            return model.outputs(psi)
        return model.outputs(psi, torch.tensor([t]))[:, 0]

    def outputs(self, t: int, f_train: torch.Tensor, f_test: torch.Tensor) -> dict[str, torch.Tensor]:
        """The full outputs at step t that :meth:`row` compares, float64, by name: ``train_net`` and ``test_net``
        (the network's, given), ``train_lin``, ``test_lin`` (f^lin), ``train_stripped``, ``test_stripped``, and
        where the family has them ``test_fw`` (the finite-width model) and ``test_ntk_inf`` (the exact NTK
        model); each (K, n) or (K, n_test). What ``keep_outputs`` stores (:mod:`earlylin.experiments.pipeline`)."""
        tt = torch.tensor([t])
        out = {"train_net": f_train.double(), "test_net": f_test.double()}
        out["train_lin"], out["test_lin"] = (self._at(self.lin, p, t) for p in self.psi)
        out["train_stripped"], out["test_stripped"] = (self._at(self.stripped, p, t) for p in self.psi_s)
        if self.fw is not None and self.psi_fw is not None:
            out["test_fw"] = self.fw.outputs(self.psi_fw[1], tt)[:, 0]
        if self.inf is not None and self.psi_inf is not None:
            out["test_ntk_inf"] = self.inf.outputs(self.psi_inf[1], tt)[:, 0]
        return out

    def row(self, t: int, f_train: torch.Tensor, f_test: torch.Tensor,
            outputs: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """All per-seed metrics at step t, given the network's train and test outputs; ``outputs``: those of
        :meth:`outputs` at this step where the caller has them already."""
        o = self.outputs(t, f_train, f_test) if outputs is None else outputs
        f_net, ft_net, y, yt = o["train_net"], o["test_net"], self.y, self.yt
        tt = torch.tensor([t])
        f_lin, ft_lin, f_str, ft_str = o["train_lin"], o["test_lin"], o["train_stripped"], o["test_stripped"]
        par_net, perp_net = self.vsplit.split(ft_net - yt)
        par_lin, perp_lin = self.vsplit.split(ft_lin - yt)
        extra = {}
        if "test_fw" in o:  # finite-width model: the width part of the error
            ft_fw = o["test_fw"]
            extra = {"test_mse_fw": mse(ft_net, ft_fw), "test_mse_lin_fw": mse(ft_fw, ft_lin)}
        if "test_ntk_inf" in o:  # exact infinite-width NTK model (kernel GD)
            ft_inf = o["test_ntk_inf"]
            extra |= {"test_mse_ntk_inf": mse(ft_net, ft_inf), "test_rel_mse_ntk_inf": relative_mse(ft_net, ft_inf),
                      "test_mse_lin_ntk_inf": mse(ft_inf, ft_lin),
                      "test_loss_ntk_inf": train_loss("squared", ft_inf, yt),
                      "test_res_perp_ntk_inf": self.vsplit.split(ft_inf - yt)[1]}
        for name, pair in self.psi_ab.items():  # f^lin ablations; None: the ablation is f^lin itself
            f_ab, ft_ab = (f_lin, ft_lin) if pair is None else (self.ablated[name].outputs(p, tt)[:, 0] for p in pair)
            extra |= {f"train_loss_{name}": train_loss("squared", f_ab, y),
                      f"test_loss_{name}": train_loss("squared", ft_ab, yt),
                      f"test_mse_{name}": mse(ft_net, ft_ab)}
        L = self.loss_name
        mu = (mu_terms(ft_net, ft_lin, yt) if self.classes is None
              else mu_labels(labels(ft_net), labels(ft_lin), labels(yt), self.classes))
        row = extra | {
            "train_loss_net": train_loss(L, f_net, y),
            "test_loss_net": train_loss(L, ft_net, yt),
            "train_loss_lin": train_loss(L, f_lin, y),
            "test_loss_lin": train_loss(L, ft_lin, yt),
            "train_loss_stripped": train_loss(L, f_str, y),
            "test_loss_stripped": train_loss(L, ft_str, yt),
            "train_mse": output_mse(f_net, f_lin),
            "test_mse": output_mse(ft_net, ft_lin),
            "train_rel_mse": relative_mse(f_net, f_lin),
            "test_rel_mse": relative_mse(ft_net, ft_lin),
            "test_mse_stripped": output_mse(ft_net, ft_str),
            "train_err_net": class_error(f_net, y),
            "test_err_net": class_error(ft_net, yt),
            "test_err_lin": class_error(ft_lin, yt),
            "test_res_par_net": par_net,
            "test_res_perp_net": perp_net,
            "test_res_par_lin": par_lin,
            "test_res_perp_lin": perp_lin,
            "mu": mu.mu,
            "logits_net": ft_net[:, :N_LOGITS],
            "logits_lin": ft_lin[:, :N_LOGITS],
        }
        if self.classification:
            row["test_label_agreement"] = label_agreement(ft_net, ft_lin)
            row["mu_i_fy"] = mu.i_fy
        if self.classes is not None:
            row["test_mse_per_output"] = torch.mean((ft_net - ft_lin) ** 2, dim=1)
        if self.iterated:
            row["linear_coef"] = self.lin.beta.clone()  # type: ignore[union-attr]
        return row

    def per_seed(
        self, rows: list[dict[str, torch.Tensor]], steps: list[int], seeds: list[int], diverged: dict[int, int],
        wall: float,
    ) -> dict[int, dict]:
        """Stack recorded rows into {seed: {metric: [value per step]}} plain data."""
        table = {k: torch.stack([r[k] for r in rows], dim=1).cpu().numpy() for k in rows[0]}
        # (K, R, p[, C]): β_t of f^lin at every recorded step (of the iterated model: as recorded)
        coef = table.pop("linear_coef") if self.iterated else self.lin.coef(torch.tensor(steps)).cpu().numpy()
        out: dict[int, dict] = {}
        for i, s in enumerate(seeds):
            metrics = {k: to_jsonable(val[i]) for k, val in table.items()}
            metrics.update(
                steps=list(steps),
                logits_y=to_jsonable(self.yt[i, :N_LOGITS]),
                vlin_rank=int(self.vsplit.rank[i]),
                stability_bound=float(self.bound[i]),
                linear_coef=to_jsonable(coef[i]),
                diverged_at=diverged.get(s),
                wall_time_s=wall / len(seeds),
            )
            out[s] = metrics
        return out

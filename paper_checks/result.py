"""The outcome of one paper check (:class:`CheckResult`) and what the report says of every check.

Per check: the details it depends on that the paper does not give (:data:`UNKNOWNS`), the claim it
shares with other checks (:data:`CLAIM_OF`; the report counts claims) and the label of the one row of
a check built without a choice table (:data:`ROW_AS_RUN`). :mod:`paper_checks.checks` and
:mod:`paper_checks.fig3` build the results.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from paper_checks.verdicts import Row, summarise

# Fig 3's agreement and its V_lin⊥ half, one check per study (paper_checks/fig3.py): single runs at paper size (FC and
# CNN, per activation × inputs) and with the fitted linear model; grids → a label for the claim line
FIG3_SINGLE = ("fig3_fc", "fig3_fc_sphere", "fig3_fc_erf_coordinate", "fig3_fc_relu_sphere", "fig3_fc_fitted",
               "fig3_cnn", "fig3_cnn_erf_sphere")
FIG3_GRIDS = {"fig3_cnn_cpu": "CNN at n = 1,000 (the largest n run on a CPU), erf on the sphere, ReLU per coordinate",
              "fig3_grid": "grid of activation × inputs × width, subsampled",
              "fig3_grid_wide": "grid of activation × inputs, wider nets, subsampled",
              "fig3_grid_widest": "grid of activation × inputs, widest nets (FC 2,048, CNN 128), subsampled"}
FIG3_WINDOW_CHECKS = tuple(f"{s}_window" for s in (*FIG3_SINGLE, *FIG3_GRIDS))
VLIN_PERP_CHECKS = tuple(f"vlin_perp{s.removeprefix('fig3')}" for s in (*FIG3_SINGLE, *FIG3_GRIDS)
                         if s != "fig3_fc_fitted")  # the fitted model has no V_lin split of its own

# The details each check depends on that the paper does not give (our choices); "none": the check has one row.
_FIG3_UNKNOWNS = ("activation", "input normalisation (per coordinate or ‖x‖ = √d)", "width", "steps and η",
                  "linear model (derived or fitted constants)")
UNKNOWNS: dict[str, tuple[str, ...]] = {
    "fig1_window": ("none (d, m, n, erf given; the teacher's details and η = 1 are ours, one choice run)",),
    "fig1_late": ("none (as fig1_window)",),
    "fig1c_fixed": ("none (the paper's fixed m = 256 and n = 20,000)",),
    "fig1c_scaled": ("α of n, m ∝ d^{1+α} (α = 1/2, one choice run)",),
    "fig2_norm": ("the norm-dependent target's formula",),
    **{name: (*_FIG3_UNKNOWNS, "the early window (the paper's ~1,000 steps, or the linear regime measured from the "
                               "run)")
       for name in FIG3_WINDOW_CHECKS},
    **{name: _FIG3_UNKNOWNS for name in VLIN_PERP_CHECKS},
    "first_layer_rate": ("α of n, m ∝ d^{1+α} (α = 1/2, one choice run)",),
    "second_layer_width": ("none",),
    "kernel_bound": ("none (n = m = 2·d^{3/2}, one choice run)",),
    "escape_scaling": ("the escape criterion (MSE doubles after T; one choice run)",),
    **dict.fromkeys(("training_early", "training_early_paper_size"), (
        "data (cats vs horses, ten classes)", "loss (squared, cross-entropy)", "optimizer (full-batch GD, SGD with "
        "batch 128)", "the early phase (η·t ≤ 100)")),
    "lazy_alpha": ("the network, data and η (a tanh MLP on the synthetic teacher labels, one choice run)",),
}
# claim id of each check that shares its claim with others (the rest: their own name)
CLAIM_OF: dict[str, str] = {**dict.fromkeys(FIG3_WINDOW_CHECKS, "fig3_window"),
                            **dict.fromkeys(VLIN_PERP_CHECKS, "vlin_perp"),
                            **dict.fromkeys(("training_early", "training_early_paper_size"), "training_early")}
# the choice label of the single row of checks built without a table
ROW_AS_RUN: dict[str, str] = {"fig1c_fixed": "m = 256 (the paper's)", "fig1c_scaled": "α = 1/2",
                              "first_layer_rate": "α = 1/2"}


@dataclass
class CheckResult:
    """The outcome of one check."""

    name: str
    claim: str
    paper: str
    measured: str
    criterion: str
    verdict: str
    studies: tuple[str, ...]
    numbers: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)  # the choice table; empty: one row, "as run", from the above
    unknowns: tuple[str, ...] = ()  # default: UNKNOWNS[name]
    claim_id: str = ""  # default: CLAIM_OF[name], else the name
    summary: str = ""  # holds for every choice / holds for X — fails for Y / ...

    def __post_init__(self) -> None:
        if not self.rows:
            self.rows = [Row(ROW_AS_RUN.get(self.name, "as run"), self.measured, self.verdict, dict(self.numbers))]
        self.unknowns = self.unknowns or UNKNOWNS.get(self.name, ("none",))
        self.claim_id = self.claim_id or CLAIM_OF.get(self.name, self.name)
        self.summary = self.summary or summarise(self.rows)[1]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def from_rows(name: str, claim: str, paper: str, criterion: str, rows: list[Row], studies: tuple[str, ...]
               ) -> CheckResult:
    """A check result whose verdict and one-line measured value come from its choice table."""
    verdict, summary = summarise(rows)
    measured = rows[0].measured if len(rows) == 1 else summary
    return CheckResult(name, claim, paper, measured, criterion, verdict, studies,
                       {r.choice: r.numbers for r in rows}, rows=rows, summary=summary)

"""The losses' output gradients against autograd; the update rules against torch.optim; the batch sequence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from earlylin.linear.iterated import IteratedLinear
from earlylin.linear.trajectory import LinearTrajectory
from earlylin.training.batches import Batches
from earlylin.training.losses import grad_outputs, loss
from earlylin.training.optim import Optimizer, OptimSpec, stability_factor
from tests.conftest import assert_close


def _problem(C: int | None, ce: bool, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shape = (3, 40) if C is None else (3, 40, C)
    f = torch.randn(shape, generator=g, dtype=torch.float64)
    if not ce:
        return f, torch.randn(shape, generator=g, dtype=torch.float64)
    if C is None:
        return f, torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0).double()
    return f, torch.nn.functional.one_hot(torch.randint(C, (3, 40), generator=g), C).double()


@pytest.mark.parametrize("name,C", [("squared", None), ("squared", 4), ("cross_entropy", None),
                                    ("cross_entropy", 5)])
def test_the_output_gradient_of_each_loss_is_autograds(name, C):
    f, y = _problem(C, name == "cross_entropy")
    f.requires_grad_(True)
    (want,) = torch.autograd.grad(loss(name, f, y).sum(), f)
    assert_close(grad_outputs(name, f.detach(), y), want, "autograd")


def test_the_losses_against_their_closed_forms():
    f, y = _problem(None, True)
    assert_close(loss("cross_entropy", f, y), torch.log1p(torch.exp(-y * f)).mean(-1), "arith")
    f3, y3 = _problem(3, True)
    want = torch.nn.functional.cross_entropy(f3.reshape(-1, 3), y3.reshape(-1, 3).argmax(-1), reduction="none")
    assert_close(loss("cross_entropy", f3, y3), want.reshape(3, 40).mean(-1), "arith")
    f, y = _problem(2, False)
    assert_close(loss("squared", f, y), 0.5 * ((f - y) ** 2).sum(-1).mean(-1), "arith")


@pytest.mark.parametrize("name", ["momentum", "adam"])
def test_momentum_and_adam_follow_torch_optim(name):
    """The same gradients through earlylin's rule and torch.optim's (SGD with momentum, Adam): the same iterates."""
    g = torch.Generator().manual_seed(1)
    p0 = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
    grads = [torch.randn(2, 5, 3, generator=g, dtype=torch.float64) for _ in range(25)]
    ours = p0.clone()
    opt = Optimizer(OptimSpec(name, momentum=0.8), [ours], [0.05])
    ref = p0.clone().requires_grad_(True)
    torch_opt = (torch.optim.SGD([ref], lr=0.05, momentum=0.8) if name == "momentum"
                 else torch.optim.Adam([ref], lr=0.05, betas=(0.8, 0.999), eps=1e-8))
    for gr in grads:
        opt.step([ours], [gr])
        ref.grad = gr.clone()
        torch_opt.step()
    assert_close(ours, ref.detach(), "iterated")


def test_gd_is_the_explicit_update_bit_for_bit_and_state_round_trips():
    p = torch.ones(2, 3, dtype=torch.float64)
    g = torch.full((2, 3), 0.25, dtype=torch.float64)
    Optimizer(OptimSpec("gd"), [p], [0.1]).step([p], [g])
    assert torch.equal(p, torch.ones(2, 3, dtype=torch.float64).sub_(g, alpha=0.1))
    a = Optimizer(OptimSpec("adam"), [p], [0.1])
    a.step([p], [g])
    b = Optimizer(OptimSpec("adam"), [p], [0.1])
    b.load(a.state(), torch.device("cpu"))
    assert b.t == 1 and all(torch.equal(x, y) for x, y in zip(a.buffers["m"], b.buffers["m"], strict=True))


def test_the_batch_sequence_is_a_function_of_the_step_and_covers_each_epoch():
    b = Batches(103, 10, batch_seed=4)
    first = [b.indices(t) for t in range(10)]
    again = Batches(103, 10, batch_seed=4)
    assert all(torch.equal(again.indices(t), first[t]) for t in reversed(range(10)))  # any order of asking
    epoch = torch.cat(first)
    assert len(set(epoch.tolist())) == 100 and not torch.equal(b.indices(10), first[0])  # a new epoch, reshuffled
    assert not torch.equal(Batches(103, 10, batch_seed=5).indices(0), first[0])
    assert Batches(103, 103).indices(7) is None


def test_stability_factors():
    assert stability_factor("squared", "gd", 0.9, 1) == 1.0
    assert stability_factor("squared", "momentum", 0.5, 1) == 1.5
    assert stability_factor("cross_entropy", "sgd", 0.9, 1) == 4.0
    assert stability_factor("cross_entropy", "gd", 0, 3) == 2.0
    assert stability_factor("squared", "adam", 0.9, 1) is None


@pytest.mark.parametrize("C", [None, 3])
def test_the_iterated_linear_model_retraces_the_closed_form(C):
    """Squared loss, full-batch GD: the step-by-step β (IteratedLinear, earlylin's optimizer) equals the closed
    form β_t = U diag((1 − (1 − ηλ)^t)/λ) Uᵀ b at every step, for one output and for C columns."""
    g = torch.Generator().manual_seed(2)
    psi = torch.randn(2, 60, 7, generator=g, dtype=torch.float64)
    y = torch.randn((2, 60) if C is None else (2, 60, C), generator=g, dtype=torch.float64)
    closed = LinearTrajectory.fit(psi, y, 0.3)
    it = IteratedLinear(psi, y, "squared")
    opt = Optimizer(OptimSpec("gd"), [it.beta], [0.3])
    for t in range(40):
        assert_close(it.beta, closed.coef(torch.tensor([t]))[:, 0], "iterated")
        opt.step([it.beta], [it.grad(None)])
    assert_close(it.outputs(psi), closed.outputs(psi, torch.tensor([40]))[:, 0], "iterated")


def test_the_k_column_closed_form_is_k_one_column_fits():
    g = torch.Generator().manual_seed(3)
    psi = torch.randn(2, 50, 6, generator=g, dtype=torch.float64)
    y = torch.randn(2, 50, 4, generator=g, dtype=torch.float64)
    steps = torch.tensor([0, 1, 7, 30])
    many = LinearTrajectory.fit(psi, y, 0.2).outputs(psi, steps)
    for c in range(4):
        assert_close(many[..., c], LinearTrajectory.fit(psi, y[..., c], 0.2).outputs(psi, steps), "roundoff")
    assert np.isfinite(many.numpy()).all()


@pytest.mark.parametrize("C", [None, 4])
def test_the_cross_entropy_linear_models_gradient_is_autograds(C):
    g = torch.Generator().manual_seed(5)
    psi = torch.randn(2, 30, 6, generator=g, dtype=torch.float64)
    _, y = _problem(C, True)
    y = y[:2, :30]
    it = IteratedLinear(psi, y, "cross_entropy")
    it.beta.normal_(generator=g)
    idx = torch.tensor([3, 1, 4, 15, 9, 2])
    beta = it.beta.clone().requires_grad_(True)
    f = psi[:, idx] @ (beta.unsqueeze(-1) if C is None else beta)
    (want,) = torch.autograd.grad(loss("cross_entropy", f.squeeze(-1) if C is None else f, y[:, idx]).sum(), beta)
    assert_close(it.grad(idx), want, "autograd")


def test_mu_of_two_class_labels_is_the_sign_tables():
    """μ from the general K³ label table (K = 2) equals μ from the 2×2×2 sign table on the same predictions."""
    from earlylin.experiments.mu import mu_labels, mu_terms

    g = torch.Generator().manual_seed(9)
    f, lin, y = (torch.randn(3, 200, generator=g, dtype=torch.float64) for _ in range(3))
    lin = lin + 2 * f  # correlated with the net
    y = y + f
    bits = [(a >= 0).long() for a in (f, lin, y)]
    want = mu_terms(f, lin, y)
    got = mu_labels(*bits, classes=2)
    assert_close(got.mu, want.mu, "arith")
    assert_close(got.i_fy, want.i_fy, "arith")

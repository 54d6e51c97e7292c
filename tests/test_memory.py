"""Memory modes: gradients equal plain autograd's, names are checked, memory is flat in depth."""

from __future__ import annotations

import copy
from typing import Optional

import pytest
import torch
from torch import Tensor, nn

from checks import randomize_parameters
from glowflow import Flow, Glow
from glowflow.bijectors.base import Bijector
from glowflow.memory import MEMORY_MODES, run_steps

SAVING_MODES = ("checkpoint", "invertible")


def small_glow(mode: str = "none", steps: int = 3, **options: object) -> Glow:
    """A randomized float64 Glow on 2x8x8 images with two levels."""
    glow = Glow(
        (2, 8, 8), 2, steps, hidden_channels=8, seed=0, memory_mode=mode, **options
    ).double()
    randomize_parameters(glow, scale=0.05)
    return glow


def gradients(flow: Flow, x: Tensor, y: Optional[Tensor] = None) -> tuple[Tensor, list[Tensor]]:
    """Input and parameter gradients of a loss that uses both the latents and the log-det."""
    flow.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    log_prob = flow.log_prob(x, y)
    latents = flow.encode(x, y)
    loss = -log_prob.sum() + sum((z * z.roll(1, 0)).sum() for z in latents)
    loss.backward()
    return x.grad, [p.grad for p in flow.parameters()]


@pytest.mark.parametrize("mode", SAVING_MODES)
@pytest.mark.parametrize(
    "options",
    [
        dict(permutation="invconv_lu", learn_top_prior=True),
        dict(permutation="invconv", coupling="additive"),
        dict(permutation="shuffle", mask="checkerboard", scale_fn="sigmoid", num_classes=3),
    ],
)
def test_gradients_equal_plain_autograd(mode: str, options: dict) -> None:
    plain = small_glow("none", **options)
    saving = copy.deepcopy(plain)
    saving.memory_mode = mode
    x = torch.randn(4, 2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 1]) if "num_classes" in options else None
    x_grad, param_grads = gradients(Flow(plain), x, y)
    x_grad_saving, param_grads_saving = gradients(Flow(saving), x, y)
    torch.testing.assert_close(x_grad_saving, x_grad, atol=1e-10, rtol=1e-10)
    for index, (got, want) in enumerate(zip(param_grads_saving, param_grads)):
        if want is None:  # a classifier head the likelihood does not use
            assert got is None, f"parameter {index}: gradient only in mode {mode}"
        else:
            torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10, msg=f"parameter {index}")


@pytest.mark.parametrize("mode", SAVING_MODES)
def test_gradients_accumulate_across_backward_calls(mode: str) -> None:
    plain, saving = small_glow("none"), small_glow(mode)
    x = torch.randn(3, 2, 8, 8, dtype=torch.float64)
    for glow in (plain, saving):
        Flow(glow).log_prob(x).sum().backward()
        Flow(glow).log_prob(2 * x).sum().backward()
    for got, want in zip(saving.parameters(), plain.parameters()):
        torch.testing.assert_close(got.grad, want.grad, atol=1e-10, rtol=1e-10)


class ContextShift(Bijector):
    """``y = x * exp(a) + a * c``, ``c`` a per-example context ``(B, C)``; log-det ``P sum(a)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.linspace(0.5, 1.5, channels, dtype=torch.float64))

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        assert context is not None
        shift = (self.weight * context)[:, :, None, None]
        return x * self.weight.exp()[:, None, None] + shift, self._logdet(x)

    def inverse(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        assert context is not None
        shift = (self.weight * context)[:, :, None, None]
        return (y - shift) * (-self.weight).exp()[:, None, None], -self._logdet(y)

    def _logdet(self, x: Tensor) -> Tensor:
        return (self.weight.sum() * x[0, 0].numel()).expand(x.shape[0])


@pytest.mark.parametrize("mode", SAVING_MODES)
def test_context_gets_its_gradient(mode: str) -> None:
    steps = nn.ModuleList([ContextShift(3) for _ in range(3)])
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    context = torch.randn(2, 3, dtype=torch.float64)
    results = []
    for run_mode in ("none", mode):
        steps.zero_grad(set_to_none=True)
        h = x.clone().requires_grad_(True)
        c = context.clone().requires_grad_(True)
        out, logdet = run_steps(steps, h, c, run_mode)
        (out.pow(3).sum() + logdet.sum()).backward()
        results.append([h.grad, c.grad] + [p.grad for p in steps.parameters()])
    for got, want in zip(results[1], results[0]):
        torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("mode", SAVING_MODES)
def test_actnorm_initialization_runs_outside_the_saving_path(mode: str) -> None:
    x = torch.randn(8, 2, 8, 8, dtype=torch.float64)
    plain = Glow((2, 8, 8), 2, 2, hidden_channels=8, seed=0).double()
    saving = Glow((2, 8, 8), 2, 2, hidden_channels=8, seed=0, memory_mode=mode).double()
    Flow(plain).log_prob(x).sum().backward()  # the first call initializes, with a graph
    Flow(saving).log_prob(x).sum().backward()
    for (name, got), want in zip(saving.named_parameters(), plain.parameters()):
        torch.testing.assert_close(got, want, atol=0, rtol=0, msg=name)
        torch.testing.assert_close(got.grad, want.grad, atol=1e-10, rtol=1e-10, msg=name)


def test_memory_mode_names_are_checked() -> None:
    assert MEMORY_MODES == ("none", "checkpoint", "invertible")
    with pytest.raises(ValueError, match="memory_mode must be one of"):
        Glow((2, 8, 8), 2, 2, hidden_channels=8, memory_mode="reversible")
    with pytest.raises(ValueError, match="memory_mode must be one of"):
        run_steps(nn.ModuleList(), torch.zeros(1, 2, 4, 4), None, "1")
    glow = Glow((2, 8, 8), 2, 2, hidden_channels=8, memory_mode="invertible")
    assert glow.memory_mode == "invertible"


def saved_bytes(mode: str, steps: int) -> int:
    """Bytes autograd keeps for backward (distinct storages) in one training forward."""
    glow = small_glow(mode, steps=steps).float()
    parameters = {p.untyped_storage().data_ptr() for p in glow.parameters()}
    storages: dict[int, int] = {}

    def keep(tensor: Tensor) -> Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    x = torch.randn(16, 2, 8, 8)
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        loss = Flow(glow).log_prob(x).sum()
    loss.backward()
    return sum(storages.values())


def test_invertible_mode_saves_nothing_per_step() -> None:
    assert saved_bytes("invertible", 8) == saved_bytes("invertible", 2)
    assert saved_bytes("checkpoint", 8) < saved_bytes("none", 8)
    assert saved_bytes("none", 8) > 3 * saved_bytes("invertible", 8)


@pytest.mark.parametrize("mode", MEMORY_MODES)
def test_no_grad_encoding_is_identical_in_every_mode(mode: str) -> None:
    plain, other = small_glow("none"), small_glow(mode)
    x = torch.randn(3, 2, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        for got, want in zip(Flow(other).encode(x), Flow(plain).encode(x)):
            torch.testing.assert_close(got, want, atol=0, rtol=0)


def test_invertible_backward_recomputes_under_the_forward_autocast() -> None:
    seen: list[bool] = []

    class Recording(ContextShift):
        def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
            seen.append(torch.is_autocast_enabled("cpu"))
            return super().forward(x, context)

    steps = nn.ModuleList([Recording(3) for _ in range(2)]).float()
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, logdet = run_steps(steps, x, torch.randn(2, 3), "invertible")
    assert seen == [True, True]
    (out.sum() + logdet.sum()).backward()
    assert seen == [True] * 4 and torch.isfinite(x.grad).all()

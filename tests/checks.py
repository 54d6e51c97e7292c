"""The generic bijector checker: every bijector in glowflow must pass it (float64)."""

from __future__ import annotations

import copy
import io
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from glowflow.bijectors.actnorm import ActNorm
from glowflow.bijectors.base import Bijector


def randomize_parameters(module: nn.Module, scale: float = 0.1, seed: int = 0) -> None:
    """Perturb every parameter so zero-initialized layers are no longer the identity.

    Adds ``scale * N(0, 1)`` noise to each parameter (keeps rotations and LU factors
    well-conditioned) and marks ActNorms initialized.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
            parameter.add_((scale * noise).to(parameter.dtype))
        for sub in module.modules():
            if isinstance(sub, ActNorm):
                sub.set_initialized(True)


def jacobian_logdet(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``log|det d fn(x_b)/d x_b|`` for each example ``b`` from the full autograd Jacobian."""
    values = []
    for example in x:

        def single(v: Tensor) -> Tensor:
            return fn(v.unsqueeze(0)).reshape(-1)

        jac = torch.autograd.functional.jacobian(single, example)
        jac = jac.reshape(jac.shape[0], -1)
        values.append(torch.linalg.slogdet(jac).logabsdet)
    return torch.stack(values)


def check_bijector(
    bijector: Bijector,
    x: Tensor,
    context: Optional[Tensor] = None,
    atol: float = 1e-10,
    jacobian: bool = True,
    randomize: bool = True,
    unused: tuple[str, ...] = (),
    train: bool = True,
) -> None:
    """Assert the bijector contract on input ``x`` (float64, small) and optional context.

    Checks: round trips both ways to ``atol``; ``forward`` log-det equals minus ``inverse``
    log-det; log-det equals ``slogdet`` of the autograd Jacobian; batch independence; every
    parameter gets a finite gradient; ``state_dict`` round trip reproduces outputs; event
    shapes match ``forward_shape``; ``.inv.inv is`` the bijector. Parameters whose names start
    with an entry of ``unused`` are exempt from the gradient check (e.g. a classifier head
    that ``forward`` does not use). ``train=False`` runs the checks in eval mode (layers with
    batch statistics, which are bijections per example only there).
    """
    bijector = bijector.to(torch.float64)
    x = x.to(torch.float64)
    if randomize:
        randomize_parameters(bijector)
    bijector.train(train)

    y, logdet = bijector(x, context)
    assert logdet.shape == (x.shape[0],), f"logdet shape {tuple(logdet.shape)}"
    assert logdet.dtype == torch.float64
    assert tuple(y.shape[1:]) == tuple(bijector.forward_shape(tuple(x.shape[1:])))
    assert tuple(bijector.inverse_shape(tuple(y.shape[1:]))) == tuple(x.shape[1:])
    x_back, inverse_logdet = bijector.inverse(y, context)
    torch.testing.assert_close(x_back, x, atol=atol, rtol=0)
    torch.testing.assert_close(inverse_logdet, -logdet, atol=atol, rtol=0)

    # the other round trip, from a latent point near the data
    y2 = y + 0.1 * torch.randn_like(y)
    x2, _ = bijector.inverse(y2, context)
    y2_back, _ = bijector(x2, context)
    torch.testing.assert_close(y2_back, y2, atol=atol, rtol=0)

    if jacobian:
        ctx_rows = [None] * x.shape[0] if context is None else list(context)
        expected = torch.stack(
            [
                jacobian_logdet(
                    lambda v, c=c: bijector(v, None if c is None else c.unsqueeze(0))[0],
                    x[i : i + 1],
                )[0]
                for i, c in enumerate(ctx_rows)
            ]
        )
        torch.testing.assert_close(logdet, expected, atol=1e-8, rtol=1e-8)

    # batch independence: each example alone gives the same output
    for i in range(x.shape[0]):
        c = None if context is None else context[i : i + 1]
        yi, li = bijector(x[i : i + 1], c)
        torch.testing.assert_close(yi, y[i : i + 1], atol=1e-10, rtol=0)
        torch.testing.assert_close(li, logdet[i : i + 1], atol=1e-10, rtol=0)

    # every parameter gets a gradient
    parameters = [p for p in bijector.parameters() if p.requires_grad]
    if parameters:
        bijector.zero_grad()
        out, ld = bijector(x, context)
        (out.pow(2).sum() + ld.sum()).backward()
        for name, parameter in bijector.named_parameters():
            if name.startswith(unused) and unused:
                continue
            assert parameter.grad is not None, f"parameter {name} got no gradient"
            assert torch.isfinite(parameter.grad).all(), f"parameter {name}: non-finite gradient"

    # state_dict round trip into a fresh copy
    buffer = io.BytesIO()
    torch.save(bijector.state_dict(), buffer)
    clone = copy.deepcopy(bijector)
    with torch.no_grad():
        for parameter in clone.parameters():
            parameter.zero_()
    buffer.seek(0)
    clone.load_state_dict(torch.load(buffer))
    y_clone, logdet_clone = clone(x, context)
    torch.testing.assert_close(y_clone, y, atol=1e-12, rtol=0)
    torch.testing.assert_close(logdet_clone, logdet, atol=1e-12, rtol=0)

    assert bijector.inv.inv is bijector

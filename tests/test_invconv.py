"""The 1x1 convolutions: LU parameterization and the eval-time cache."""

from __future__ import annotations

import torch

import glowflow as gf


def test_lu_weight_reconstructs_and_logdet_is_sum_log_s() -> None:
    layer = gf.InvertibleConv1x1LU(5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        layer.lower.normal_(0, 0.3)
        layer.upper.normal_(0, 0.3)
        layer.log_s.normal_(0, 0.3)
    weight, inverse, logabsdet = layer._matrices(need_inverse=True)
    torch.testing.assert_close(torch.linalg.slogdet(weight).logabsdet, logabsdet)
    torch.testing.assert_close(weight @ inverse, torch.eye(5, dtype=torch.float64))
    x = torch.randn(2, 5, 3, 3)
    _, logdet = layer(x)
    torch.testing.assert_close(logdet, (9 * layer.log_s.sum()).expand(2).detach(), rtol=1e-6, atol=1e-6)


def test_initial_weight_is_a_rotation() -> None:
    layer = gf.InvertibleConv1x1(6, generator=torch.Generator().manual_seed(0))
    weight = layer.weight.detach().double()
    torch.testing.assert_close(weight @ weight.T, torch.eye(6, dtype=torch.float64), atol=1e-6, rtol=0)
    _, logdet = layer(torch.randn(2, 6, 4, 4))
    torch.testing.assert_close(logdet, torch.zeros(2), atol=1e-5, rtol=0)


def test_seeded_generator_gives_the_same_weight() -> None:
    a = gf.InvertibleConv1x1LU(4, generator=torch.Generator().manual_seed(3))
    b = gf.InvertibleConv1x1LU(4, generator=torch.Generator().manual_seed(3))
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key])


def test_cache_is_used_without_grad_and_invalidated_by_updates() -> None:
    for layer in (gf.InvertibleConv1x1(4), gf.InvertibleConv1x1LU(4)):
        layer.eval()
        y = torch.randn(3, 4, 2, 2)
        with torch.no_grad():
            first, _ = layer.inverse(y)
            cached = layer._cache
            second, _ = layer.inverse(y)
        assert cached is not None and layer._cache is cached
        assert torch.equal(first, second)

        optimizer = torch.optim.SGD(layer.parameters(), lr=0.01)
        layer.train()
        assert layer._cache is None  # train() drops it
        layer(torch.randn(3, 4, 2, 2))[0].pow(2).sum().backward()
        optimizer.step()
        layer.eval()
        with torch.no_grad():
            after, _ = layer.inverse(y)
            round_trip, _ = layer(after)
        assert not torch.allclose(after, first)
        torch.testing.assert_close(round_trip, y, atol=1e-5, rtol=0)


def test_gradients_flow_in_eval_mode_when_grad_is_enabled() -> None:
    layer = gf.InvertibleConv1x1(3).eval()
    _, logdet = layer(torch.randn(2, 3, 2, 2))
    y, _ = layer(torch.randn(2, 3, 2, 2))
    (y.sum() + logdet.sum()).backward()
    assert layer.weight.grad is not None

"""The 1x1 convolutions: LU parameterization and the eval-time cache."""

from __future__ import annotations

import copy
from typing import Callable, Optional

import pytest
import torch
from torch import Tensor

import glowflow as gf
from glowflow.bijectors.invconv import _InvertibleChannelMap

LAYERS = (gf.InvertibleConv1x1, gf.InvertibleConv1x1LU)


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
    torch.testing.assert_close(
        logdet, (9 * layer.log_s.sum()).expand(2).detach(), rtol=1e-6, atol=1e-6
    )


def test_initial_weight_is_a_rotation() -> None:
    layer = gf.InvertibleConv1x1(6, generator=torch.Generator().manual_seed(0))
    weight = layer.weight.detach().double()
    torch.testing.assert_close(
        weight @ weight.T, torch.eye(6, dtype=torch.float64), atol=1e-6, rtol=0
    )
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


# --- the eval-time cache is exact: cached results equal uncached ones after any change ---


def _make(cls: type[_InvertibleChannelMap], seed: int = 0) -> _InvertibleChannelMap:
    return cls(4, generator=torch.Generator().manual_seed(seed)).eval()


def _prime(layer: _InvertibleChannelMap) -> None:
    """Fill the cache from the layer's current weights, so that a change can make it stale."""
    with torch.no_grad():
        layer.inverse(torch.randn(1, 4, 2, 2, dtype=next(layer.parameters()).dtype))
    assert layer._cache is not None


def _assert_matches_uncached(
    layer: _InvertibleChannelMap, dtype: torch.dtype = torch.float32, atol: float = 1e-5
) -> None:
    """Cached forward/inverse equal a fresh copy's (no cache), and the round trip is exact."""
    x = torch.randn(3, 4, 5, 5, dtype=dtype, generator=torch.Generator().manual_seed(1))
    reference = copy.deepcopy(layer)
    reference._cache = None
    with torch.no_grad():
        y, logdet = layer(x)
        assert layer._cache is not None  # the cached path was taken
        x_back, inverse_logdet = layer.inverse(y)
        y_ref, logdet_ref = reference(x)
        x_ref, inverse_logdet_ref = reference.inverse(y_ref)
        weight, inverse, logabsdet = layer._matrices(need_inverse=True)
    assert torch.equal(y, y_ref) and torch.equal(logdet, logdet_ref)
    assert torch.equal(x_back, x_ref) and torch.equal(inverse_logdet, inverse_logdet_ref)
    assert torch.equal(layer._cache.inverse, inverse)
    assert torch.equal(layer._cache.logabsdet, logabsdet)
    torch.testing.assert_close(layer._cache.weight.double(), weight.double(), atol=0, rtol=0)
    expected = (25 * torch.linalg.slogdet(weight.double()).logabsdet).to(logdet.dtype).expand(3)
    torch.testing.assert_close(logdet, expected, atol=1e-4, rtol=1e-6)
    torch.testing.assert_close(inverse_logdet, -logdet, atol=0, rtol=0)
    torch.testing.assert_close(x_back, x, atol=atol, rtol=0)


def _scale_weight(layer: _InvertibleChannelMap) -> None:
    layer.weight.data.mul_(2)


def _replace_weight_data(layer: _InvertibleChannelMap) -> None:
    layer.weight.data = layer.weight.data.flip(0) * 0.5  # new storage, version counter reset


def _shift_log_s(layer: _InvertibleChannelMap) -> None:
    layer.log_s.data.add_(0.3)


def _change_upper(layer: _InvertibleChannelMap) -> None:
    layer.upper.data.add_(0.2 * torch.triu(torch.ones(4, 4), 1))


def _change_lower(layer: _InvertibleChannelMap) -> None:
    layer.lower.data.sub_(0.2 * torch.tril(torch.ones(4, 4), -1))


def _flip_sign(layer: _InvertibleChannelMap) -> None:
    layer.sign_s.data[0] *= -1


def _swap_permutation(layer: _InvertibleChannelMap) -> None:
    layer.permutation.copy_(layer.permutation.flip(1))


DATA_WRITES: list[tuple[type[_InvertibleChannelMap], Callable[[_InvertibleChannelMap], None]]] = [
    (gf.InvertibleConv1x1, _scale_weight),
    (gf.InvertibleConv1x1, _replace_weight_data),
    (gf.InvertibleConv1x1LU, _shift_log_s),
    (gf.InvertibleConv1x1LU, _change_upper),
    (gf.InvertibleConv1x1LU, _change_lower),
    (gf.InvertibleConv1x1LU, _flip_sign),
    (gf.InvertibleConv1x1LU, _swap_permutation),
]


@pytest.mark.parametrize(("cls", "write"), DATA_WRITES, ids=lambda v: getattr(v, "__name__", ""))
def test_cache_follows_writes_through_data(
    cls: type[_InvertibleChannelMap], write: Callable[[_InvertibleChannelMap], None]
) -> None:
    layer = _make(cls)
    _prime(layer)
    stale = layer._cache
    before = copy.deepcopy(layer)
    write(layer)
    assert any(not torch.equal(a, b) for a, b in zip(layer._state(), before._state()))
    _assert_matches_uncached(layer)
    assert layer._cache is not stale


def test_scaling_the_weight_in_place_scales_the_logdet() -> None:
    layer = _make(gf.InvertibleConv1x1)
    x = torch.randn(2, 4, 3, 3)
    with torch.no_grad():
        _, logdet = layer(x)
        layer.weight.data.mul_(2)
        y, scaled_logdet = layer(x)
        x_back, _ = layer.inverse(y)
    log_det_of_2 = 4 * torch.log(torch.tensor(2.0))  # det(2 W) = 2^C det(W), C = 4
    torch.testing.assert_close(scaled_logdet - logdet, (9 * log_det_of_2).expand(2))
    torch.testing.assert_close(x_back, x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cls", LAYERS)
def test_cache_follows_load_state_dict(cls: type[_InvertibleChannelMap]) -> None:
    layer, other = _make(cls, seed=0), _make(cls, seed=1)
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.mul_(1.1)
    _prime(layer)
    layer.load_state_dict(other.state_dict())
    _assert_matches_uncached(layer)
    with torch.no_grad():
        x = torch.randn(2, 4, 3, 3)
        assert torch.equal(layer(x)[0], other(x)[0]) and torch.equal(layer(x)[1], other(x)[1])


@pytest.mark.parametrize("cls", LAYERS)
def test_cache_follows_optimizer_steps(cls: type[_InvertibleChannelMap]) -> None:
    layer = _make(cls)  # stays in eval mode: nothing but the cache check can catch the step
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.05)
    for _ in range(2):
        _prime(layer)
        stale = layer._cache
        optimizer.zero_grad()
        y, logdet = layer(torch.randn(3, 4, 2, 2))
        (y.pow(2).sum() - logdet.sum()).backward()
        optimizer.step()
        _assert_matches_uncached(layer)
        assert layer._cache is not stale


@pytest.mark.parametrize("cls", LAYERS)
def test_cache_follows_dtype_moves(cls: type[_InvertibleChannelMap]) -> None:
    layer = _make(cls)
    _prime(layer)
    layer.to(torch.float64)
    assert layer._cache is None
    _assert_matches_uncached(layer, dtype=torch.float64, atol=1e-12)
    assert layer._cache.snapshot[0].dtype == torch.float64
    layer.to(torch.float32)
    _assert_matches_uncached(layer)


def test_cache_follows_a_dtype_change_through_data() -> None:
    layer = _make(gf.InvertibleConv1x1)
    _prime(layer)
    layer.weight.data = layer.weight.data.double() * 1.5  # bypasses _apply
    _assert_matches_uncached(layer, dtype=torch.float64, atol=1e-12)


@pytest.mark.parametrize("cls", LAYERS)
@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "frozen"])
def test_cache_is_reused_while_nothing_changes(
    cls: type[_InvertibleChannelMap], mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = _make(cls)
    calls: list[bool] = []
    original = cls._matrices

    def counting(
        self: _InvertibleChannelMap, need_inverse: bool
    ) -> tuple[Tensor, Optional[Tensor], Tensor]:
        calls.append(need_inverse)
        return original(self, need_inverse)

    monkeypatch.setattr(cls, "_matrices", counting)
    if mode == "frozen":
        layer.requires_grad_(False)
    context = {
        "no_grad": torch.no_grad,
        "inference_mode": torch.inference_mode,
        "frozen": torch.enable_grad,
    }[mode]
    x = torch.randn(2, 4, 3, 3)
    with context():
        first, _ = layer(x)
        second, _ = layer(x)
        back, _ = layer.inverse(second)
    assert calls == [True]
    assert torch.equal(first, second)
    torch.testing.assert_close(back, x, atol=1e-5, rtol=0)
    with torch.no_grad():
        layer.eval()  # eval() is train(False): it drops the cache
        layer(x)
    assert calls == [True, True]


def test_cache_from_inference_mode_serves_frozen_layers_with_grad() -> None:
    for cls in LAYERS:
        layer = _make(cls)
        with torch.inference_mode():
            layer.inverse(torch.randn(1, 4, 2, 2))
        layer.requires_grad_(False)
        x = torch.randn(2, 4, 3, 3, dtype=torch.float64, requires_grad=True)  # uses W^-1 as cached
        y, _ = layer.inverse(x)
        y.sum().backward()
        assert x.grad is not None

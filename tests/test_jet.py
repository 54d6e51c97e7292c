"""Jet: its ViT coupling through the generic checker (float64, autograd Jacobian), the spatial
split patterns, the identity at initialization, the model, and fp32 coupling arithmetic
under bf16 autocast."""

from __future__ import annotations

import math

import pytest
import torch

from checks import check_bijector, randomize_parameters
from glowflow.bijectors.jet_coupling import JetCoupling, spatial_permutation
from glowflow.errors import ConfigError
from glowflow.models.jet import jet


def draw(*shape: int, seed: int = 1, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def coupling(
    kind: str, tokens: int = 4, dim: int = 5, pattern: str = "checkerboard"
) -> JetCoupling:
    torch.manual_seed(0)
    if kind == "channels":
        permutation = torch.randperm(dim)
    else:
        permutation = spatial_permutation((2, tokens // 2), pattern)
    return JetCoupling(tokens, dim, kind, permutation, width=16, depth=1, head_dim=8)


@pytest.mark.parametrize(
    "kind, pattern", [("channels", ""), ("spatial", "checkerboard"), ("spatial", "hstripes-inv")]
)
def test_jet_coupling_passes_the_bijector_checks(kind: str, pattern: str) -> None:
    check_bijector(coupling(kind, pattern=pattern or "checkerboard"), draw(2, 4, 5))


def test_jet_coupling_starts_as_the_identity_and_scales_within_zero_and_two() -> None:
    x = draw(3, 4, 5)
    for kind in ("channels", "spatial"):
        b = coupling(kind).double()
        y, logdet = b(x)
        torch.testing.assert_close(y, x, atol=1e-15, rtol=0)
        torch.testing.assert_close(logdet, torch.zeros(3, dtype=torch.float64), atol=1e-14, rtol=0)
    b = coupling("channels").double()
    with torch.no_grad():
        b.conditioner.final_proj.bias.fill_(50.0)  # h -> +inf: s -> 2 on the transformed part
    _, logdet = b(x)
    torch.testing.assert_close(logdet, torch.full((3,), 4 * 3 * math.log(2.0), dtype=torch.float64))


def test_channel_coupling_conditions_on_the_first_half_of_the_permuted_entries() -> None:
    b = coupling("channels").double()
    randomize_parameters(b, 0.3)
    x = draw(1, 4, 5)
    y, _ = b(x)
    kept = b.perm[: b.cut]
    assert torch.equal(y[..., kept], x[..., kept])
    assert not torch.allclose(y[..., b.perm[b.cut :]], x[..., b.perm[b.cut :]])


def test_spatial_patterns_split_the_grid() -> None:
    grid = {
        "checkerboard": [[0, 1, 0], [1, 0, 1]],
        "vstripes": [[0, 1, 0], [0, 1, 0]],
        "hstripes": [[0, 0, 0], [1, 1, 1]],
    }
    for pattern, halves in grid.items():
        expected = torch.tensor(halves).reshape(-1)
        for suffix, conditioning in (("", 0), ("-inv", 1)):
            if pattern == "vstripes":
                continue  # 3 columns do not halve
            order = spatial_permutation((2, 3), pattern + suffix)
            assert (
                sorted(order[:3].tolist())
                == torch.nonzero(expected == conditioning).flatten().tolist()
            )
            assert sorted(order.tolist()) == list(range(6))
    with pytest.raises(ConfigError, match="does not halve"):
        spatial_permutation((2, 3), "vstripes")
    assert spatial_permutation((2, 2), "vstripes").tolist() == [0, 2, 1, 3]


def test_jet_model_round_trips_and_starts_as_the_identity() -> None:
    model = jet((2, 4, 4), 2, 6, 1, 16, head_dim=8, kinds=("channels", "spatial"), seed=0)
    x = draw(3, 2, 4, 4, dtype=torch.float32)
    expected = -0.5 * (x.pow(2).sum(dim=(1, 2, 3)) + 32 * math.log(2 * math.pi))
    torch.testing.assert_close(model.log_prob(x), expected)  # zero-initialized couplings
    randomize_parameters(model, 0.1)
    kinds = [b.kind for b in model.bijector.bijectors if isinstance(b, JetCoupling)]
    assert kinds == ["channels", "spatial"] * 3
    with torch.no_grad():
        (z,) = model.encode(x)
        assert z.shape == x.shape
        torch.testing.assert_close(model.decode([z]), x, atol=1e-6, rtol=0)
        samples = model.sample(2, 0.8)
    assert samples.shape == (2, 2, 4, 4) and torch.isfinite(samples).all()
    first, second = (
        jet((2, 4, 4), 2, 6, 1, 16, head_dim=8, kinds=("channels", "spatial"), seed=seed)
        for seed in (0, 0)
    )
    assert all(
        torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values())
    )
    other = jet((2, 4, 4), 2, 6, 1, 16, head_dim=8, kinds=("channels", "spatial"), seed=1)
    assert not torch.equal(other.bijector[1].perm, first.bijector[1].perm)


def test_jet_rejects_bad_settings() -> None:
    for bad, match in (
        (dict(patch_size=3), "divisible by patch_size"),
        (dict(kinds=("channels", "pixels")), "kinds must be"),
        (dict(width=20), "multiple of head_dim"),
        (dict(spatial_patterns=("zigzag",)), "spatial pattern must be one of"),
    ):
        settings: dict = dict(patch_size=2, num_couplings=2, block_depth=1, width=16, head_dim=8)
        settings.update(bad)
        with pytest.raises(ConfigError, match=match):
            jet((1, 4, 4), kinds=settings.pop("kinds", ("channels", "spatial")), **settings)


def test_coupling_arithmetic_is_fp32_under_bf16_autocast() -> None:
    model = jet((2, 4, 4), 2, 4, 1, 16, head_dim=8, kinds=("channels", "spatial"), seed=0)
    randomize_parameters(model, 0.1)
    x = draw(3, 2, 4, 4, dtype=torch.float32)
    with torch.no_grad():
        reference = model.log_prob(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            (z,) = model.encode(x)
            log_p = model.log_prob(x)
            back = model.decode([z])
    assert z.dtype == log_p.dtype == back.dtype == torch.float32
    # the ViT reads the unchanged half, bit for bit the same both ways: an fp32-exact inverse
    torch.testing.assert_close(back, x, atol=1e-6, rtol=0)
    torch.testing.assert_close(log_p, reference, atol=0.5, rtol=1e-2)

"""Every bijector through the generic checker (float64, autograd Jacobian, round trips)."""

from __future__ import annotations

from typing import Callable

import pytest
import torch

import glowflow as gf
from checks import check_bijector

Case = Callable[[], tuple[gf.Bijector, torch.Tensor]]


class ExitAsBijector(gf.Bijector):
    """An :class:`~glowflow.Exit` seen as the bijection ``x -> [continuing, latent]`` (channel
    concatenation), so the generic checker tests it: round trips, log-det against autograd."""

    def __init__(self, exit: gf.Exit) -> None:
        super().__init__()
        self.exit = exit
        self.event_shape = exit.event_shape

    def forward(self, x, context=None):
        continuing, latent, logdet = self.exit(x, context)
        return torch.cat([continuing, latent], dim=1), logdet

    def inverse(self, y, context=None):
        cut = self.exit.num_continuing
        return self.exit.inverse(y[:, :cut], y[:, cut:], context)


def image(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


CASES: dict[str, Case] = {
    "actnorm": lambda: (gf.ActNorm(3), image(3, 3, 2, 2)),
    "actnorm_flat": lambda: (gf.ActNorm(4), image(3, 4)),
    "invconv": lambda: (gf.InvertibleConv1x1(3), image(2, 3, 2, 2)),
    "invconv_flat": lambda: (gf.InvertibleConv1x1(4), image(2, 4)),
    "invconv_lu": lambda: (gf.InvertibleConv1x1LU(4), image(2, 4, 2, 2)),
    "reverse": lambda: (gf.ChannelPermutation.reverse(5), image(2, 5, 2, 2)),
    "shuffle": lambda: (
        gf.ChannelPermutation.shuffle(5, torch.Generator().manual_seed(3)),
        image(2, 5, 2, 2),
    ),
    "squeeze": lambda: (gf.Squeeze(), image(2, 2, 4, 4)),
    "affine_exp": lambda: (gf.ChannelCoupling(4, gf.glow_network(2, 4, 8)), image(2, 4, 2, 2)),
    "affine_sigmoid_odd": lambda: (
        gf.ChannelCoupling(5, gf.glow_network(3, 4, 8), scale_fn="sigmoid"),
        image(2, 5, 2, 2),
    ),
    "additive": lambda: (
        gf.ChannelCoupling(4, gf.glow_network(2, 2, 8), kind="additive"),
        image(2, 4, 2, 2),
    ),
    "checkerboard_affine": lambda: (
        gf.CheckerboardCoupling((2, 4, 4), gf.glow_network(2, 4, 8)),
        image(2, 2, 4, 4),
    ),
    "checkerboard_additive_odd_parity": lambda: (
        gf.CheckerboardCoupling((2, 4, 4), gf.glow_network(2, 2, 8), "additive", parity=1),
        image(2, 2, 4, 4),
    ),
    "exit": lambda: (ExitAsBijector(gf.Exit((4, 2, 2), 3)), image(2, 4, 2, 2)),
    "exit_none": lambda: (ExitAsBijector(gf.Exit((4, 2, 2), 0)), image(2, 4, 2, 2)),
    "exit_all": lambda: (ExitAsBijector(gf.Exit((4, 2, 2), 4)), image(2, 4, 2, 2)),
    "learned_prior": lambda: (gf.LearnedPrior((3, 2, 2)), image(2, 3, 2, 2)),
    "chain": lambda: (
        gf.Chain(
            gf.ActNorm(4), gf.InvertibleConv1x1(4), gf.ChannelCoupling(4, gf.glow_network(2, 4, 8))
        ),
        image(2, 4, 2, 2),
    ),
    "chain_with_squeeze": lambda: (
        gf.Chain(gf.Squeeze(), gf.ActNorm(8), gf.Squeeze().inv),
        image(2, 2, 4, 4),
    ),
    "inverse_of_coupling": lambda: (
        gf.ChannelCoupling(4, gf.glow_network(2, 4, 8)).inv,
        image(2, 4, 2, 2),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bijector_contract(name: str) -> None:
    bijector, x = CASES[name]()
    check_bijector(bijector, x)


def test_class_conditional_prior_contract() -> None:
    prior = gf.ClassConditionalPrior((3, 2, 2), num_classes=4)
    check_bijector(
        prior, image(3, 3, 2, 2), context=torch.tensor([0, 3, 1]), unused=("classifier",)
    )


def test_class_conditional_prior_accepts_one_hot_rows() -> None:
    prior = gf.ClassConditionalPrior((3, 2, 2), num_classes=4)
    with torch.no_grad():
        prior.class_table.normal_()
    z = image(2, 3, 2, 2).float()
    labels = torch.tensor([2, 0])
    by_label = prior(z, labels)
    by_one_hot = prior(z, torch.nn.functional.one_hot(labels, 4).float())
    torch.testing.assert_close(by_label, by_one_hot)


def test_zero_initialized_couplings_start_as_identity() -> None:
    coupling = gf.ChannelCoupling(4, gf.glow_network(2, 4, 16))
    x = torch.randn(3, 4, 5, 5)
    y, logdet = coupling(x)
    assert torch.equal(y, x)
    assert torch.equal(logdet, torch.zeros(3))


def test_inverse_of_inverse_is_the_bijector() -> None:
    layer = gf.ActNorm(2)
    assert layer.inv.inv is layer
    assert layer.inv is layer.inv


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_logdet_accumulates_in_float32_for_low_precision(dtype: torch.dtype) -> None:
    layer = gf.ChannelCoupling(4, gf.glow_network(2, 4, 8)).to(dtype)
    _, logdet = layer(torch.randn(2, 4, 2, 2, dtype=dtype))
    assert logdet.dtype == torch.float32


@pytest.mark.parametrize("num_exit", [0, 1, 3, 4])
def test_exit_takes_the_exiting_channels_out(num_exit: int) -> None:
    exit = gf.Exit((4, 2, 2), num_exit).double()
    x = image(3, 4, 2, 2)
    continuing, latent, logdet = exit(x)
    assert continuing.shape == (3, 4 - num_exit, 2, 2) and latent.shape == (3, num_exit, 2, 2)
    assert torch.equal(continuing, x[:, : 4 - num_exit])  # the continuing part passes unchanged
    back, inverse_logdet = exit.inverse(continuing, latent)
    torch.testing.assert_close(back, x)
    torch.testing.assert_close(inverse_logdet, -logdet)

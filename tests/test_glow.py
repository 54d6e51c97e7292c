"""The Glow bijector: exact log-det of the whole map, TFP's parameters, multi-scale exits."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import glowflow as gf
from checks import check_bijector


def small_glow(**overrides: object) -> gf.Glow:
    options = dict(
        output_shape=(3, 8, 8), num_glow_blocks=2, num_steps_per_block=2, hidden_channels=8, seed=0
    )
    options.update(overrides)
    return gf.Glow(**options)  # type: ignore[arg-type]


def test_whole_glow_logdet_matches_autograd_jacobian() -> None:
    glow = small_glow(coupling="affine", use_actnorm=True, learn_top_prior=True)
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)) - 0.5
    check_bijector(glow, x)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(coupling="additive", permutation="reverse"),
        dict(permutation="shuffle", scale_fn="sigmoid"),
        dict(permutation="invconv_lu", mask="checkerboard"),
        dict(mask="checkerboard_channel", num_steps_per_block=3),
        dict(num_classes=3),
    ],
    ids=["additive-reverse", "shuffle-sigmoid", "lu-checkerboard", "realnvp-masks", "conditional"],
)
def test_glow_variants_are_exact(overrides: dict) -> None:
    glow = small_glow(**overrides)
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)) - 0.5
    context = torch.tensor([0, 2]) if "num_classes" in overrides else None
    check_bijector(glow, x, context=context, jacobian=False, unused=("top_prior.classifier",))


def test_default_cifar_glow_reconstructs_in_float32() -> None:
    glow = gf.Glow(output_shape=(3, 32, 32), num_glow_blocks=3, seed=0)
    flow = gf.Flow(glow)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) - 0.5
    flow.initialize(x)
    with torch.no_grad():  # make the zero-initialized couplings and exits non-trivial
        for module in glow.modules():
            if isinstance(module, gf.ZeroConv2d):
                module.conv.weight.normal_(0.0, 0.002)
    zs = flow.encode(x)
    assert [tuple(z.shape[1:]) for z in zs] == [(6, 16, 16), (12, 8, 8), (48, 4, 4)]
    torch.testing.assert_close(flow.decode(zs), x, atol=1e-4, rtol=0)


def test_grab_after_block_default_is_half_then_top() -> None:
    glow = gf.Glow((3, 16, 16), num_glow_blocks=3, num_steps_per_block=1, hidden_channels=4)
    assert glow.grab_after_block == (0.5, 0.5, 0.0)
    assert glow.latent_shapes == [(6, 8, 8), (12, 4, 4), (48, 2, 2)]


def test_grab_fraction_other_than_half_and_odd_channels() -> None:
    glow = small_glow(grab_after_block=(0.3,))
    # block 0: 12 channels, floor(0.3 * 12) = 3 exit, 9 go on; block 1: 36 channels, top latent
    assert glow.latent_shapes == [(3, 4, 4), (36, 2, 2)]
    x = torch.rand(2, 3, 8, 8) - 0.5
    check_bijector(glow, x, jacobian=False)

    odd = gf.Glow((1, 8, 8), 2, 1, grab_after_block=(0.75, 0.0), hidden_channels=4, seed=0)
    assert odd.latent_shapes == [(3, 4, 4), (4, 2, 2)]  # 1 channel goes on, squeezed to 4
    check_bijector(odd, torch.rand(2, 1, 8, 8) - 0.5, jacobian=False)


def test_exit_special_cases_no_channel_and_all_channels() -> None:
    nothing = small_glow(grab_after_block=(0.0, 0.0))
    assert nothing.latent_shapes == [(48, 2, 2)]
    assert nothing.levels[0].exit.coupling is None
    everything = small_glow(grab_after_block=(0.5, 1.0))
    assert everything.latent_shapes == [(6, 4, 4), (24, 2, 2)]
    assert everything.levels[1].exit.coupling is None and not everything.has_top_remainder
    for glow in (nothing, everything):
        check_bijector(glow, torch.rand(2, 3, 8, 8) - 0.5, jacobian=False)


def test_exit_starts_as_standard_normal_prior() -> None:
    glow = small_glow()
    flow = gf.Flow(glow)
    x = torch.rand(4, 3, 8, 8) - 0.5
    flow.initialize(x)
    with torch.no_grad():
        encoding = glow.forward_levels(x)
        exit_logdet = glow.levels[0].exit(torch.randn(4, 12, 4, 4)).logdet
    assert torch.equal(exit_logdet, torch.zeros(4))
    assert len(encoding.latents) == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(output_shape=(3, 12, 16), num_glow_blocks=3), "H=12 and W=16 must be divisible by"),
        (dict(output_shape=(3, 8)), "output_shape must be (C, H, W)"),
        (dict(grab_after_block=(1.5,)), "grab_after_block[0] = 1.5"),
        (dict(grab_after_block=(float("nan"),)), "grab_after_block[0] = nan"),
        (dict(grab_after_block=(0.5, 0.5, 0.5)), "grab_after_block needs 2 (or 1) fractions"),
        (dict(grab_after_block=(1.0, 0.0)), "exits every channel before block 1"),
        (dict(permutation="lu"), "permutation must be one of"),
        (dict(coupling="spline"), "coupling must be one of"),
        (dict(scale_fn="softplus"), "scale_fn must be one of"),
    ],
)
def test_bad_configuration_is_a_clear_value_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as error:
        small_glow(**kwargs)
    assert message in str(error.value)


def test_coupling_bijector_fn_forms() -> None:
    one_arg = small_glow(coupling_bijector_fn=lambda shape: nn.Conv2d(shape[0], 2 * shape[0], 1))
    two_args = small_glow(
        coupling_bijector_fn=lambda shape, out: gf.glow_network(shape[0], 2 * out, 4)
    )
    as_bijector = small_glow(coupling_bijector_fn=lambda shape: gf.ActNorm(2 * shape[0]))
    assert isinstance(as_bijector.levels[0].steps[0][-1], gf.ActNorm)
    for glow in (one_arg, two_args, as_bijector):
        check_bijector(glow, torch.rand(2, 3, 8, 8) - 0.5, jacobian=False)


@pytest.mark.parametrize(
    "fn, message",
    [
        # coupling not given: the output decides additive (C_a) or affine (2 C_a), as in TFP
        (
            lambda shape: nn.Conv2d(shape[0], 3, 1),
            "to 6 (additive) or 12 (affine) channels at 4x4, got 3",
        ),
        (lambda shape: "not a network", "must return an nn.Module or a Bijector, got str"),
        (lambda shape: nn.Conv2d(shape[0] + 1, 12, 1), "the network failed on input shape"),
    ],
)
def test_bad_coupling_function_output(fn: object, message: str) -> None:
    with pytest.raises(ValueError) as error:
        small_glow(coupling_bijector_fn=fn)
    assert "coupling_bijector_fn" in str(error.value) and message in str(error.value)


def test_bad_exit_function_output() -> None:
    with pytest.raises(ValueError, match="exit_bijector_fn"):
        small_glow(exit_bijector_fn=lambda shape, out: nn.Conv2d(shape[0], out, 3, padding=1))


def test_validate_args_names_the_problem() -> None:
    glow = small_glow(validate_args=True)
    x = torch.rand(2, 3, 8, 8) - 0.5
    x[0, 1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match=r"Glow.forward: input has 1 non-finite \(NaN\) entries"):
        glow(x)
    with pytest.raises(ValueError, match=r"must have shape \(B, 3, 8, 8\), got \(2, 3, 8, 4\)"):
        glow(torch.zeros(2, 3, 8, 4))
    with pytest.raises(ValueError, match="floating-point"):
        glow(torch.zeros(2, 3, 8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="Glow.inverse: expected 2 latents"):
        glow.inverse_levels([torch.zeros(2, 6, 4, 4)])


def test_seed_makes_initialization_reproducible_without_touching_global_rng() -> None:
    state = torch.random.get_rng_state()
    first, second = small_glow(seed=7), small_glow(seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name
    other = small_glow(seed=8)
    assert not torch.equal(first.levels[0].steps[0][1].weight, other.levels[0].steps[0][1].weight)


def test_flat_latent_is_the_concatenation_of_levels() -> None:
    glow = small_glow()
    x = torch.rand(3, 3, 8, 8) - 0.5
    flat, logdet = glow(x)
    encoding = glow.forward_levels(x)
    assert flat.shape == (3, 3 * 8 * 8)
    torch.testing.assert_close(flat, glow.flatten_latents(encoding.latents))
    torch.testing.assert_close(logdet, encoding.logdet)
    for a, b in zip(glow.unflatten_latents(flat), encoding.latents):
        assert torch.equal(a, b)


def test_paper_cifar10_configuration_parameter_count() -> None:
    glow = gf.Glow((3, 32, 32), 3, 32, hidden_channels=512, learn_top_prior=True, seed=0)
    count = sum(p.numel() for p in glow.parameters())
    # per step: actnorm 2C, 1x1 conv C^2, network (C/2*9+1)*512 + 512*513 + (512*9+1)*C + C
    expected = 0
    for channels in (12, 24, 48):
        half = channels // 2
        network = (half * 9 + 1) * 512 + (512 * 512 + 512) + (512 * 9 + 1) * channels + channels
        expected += 32 * (2 * channels + channels**2 + network)
        if channels != 48:
            expected += (half * 9 + 1) * channels + channels  # split prior zero conv + gain
    expected += 2 * 48 * 4 * 4  # learned top prior
    assert count == expected
    assert math.isclose(count / 1e6, 44.2, abs_tol=0.5)


def test_unseeded_constructions_differ() -> None:
    first, second = small_glow(seed=None), small_glow(seed=None)
    assert not torch.equal(first.levels[0].steps[0][1].weight, second.levels[0].steps[0][1].weight)

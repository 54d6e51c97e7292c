"""MADE, MAF and IAF layers, MAF and IAF on flattened images, and NICE's scaling layer."""

from __future__ import annotations

import pytest
import torch

from checks import check_bijector, randomize_parameters
from glowflow.bijectors.autoregressive import (
    MADE,
    InverseAutoregressive,
    MaskedAutoregressive,
    MaskedLinear,
)
from glowflow.bijectors.chain import Chain
from glowflow.bijectors.reshape import Reshape
from glowflow.bijectors.scaling import NICEScaling
from glowflow.models import iaf, maf

D, K = 5, 3
IMAGE = (1, 8, 8)


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Default initializations draw from the global RNG: make every test order-independent."""
    torch.manual_seed(0)


LAYERS = [MaskedAutoregressive, InverseAutoregressive]


def _data(batch: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, D, generator=generator, dtype=torch.float64)
    return x, torch.randn(batch, K, generator=generator, dtype=torch.float64)


@pytest.mark.parametrize("hidden, num_hidden_layers", [(16, 2), (3, 1), (8, 0)])
@pytest.mark.parametrize("context_features", [None, K])
def test_made_output_i_depends_only_on_inputs_before_i(
    hidden: int, num_hidden_layers: int, context_features: int | None
) -> None:
    made = MADE(D, 2, hidden, num_hidden_layers, context_features).double()
    randomize_parameters(made, scale=1.0)
    x, context = _data(1)
    context = context if context_features else None
    jac = torch.autograd.functional.jacobian(lambda v: made(v, context), x)[0, :, :, 0, :]
    assert jac.shape == (2, D, D)  # (param, output i, input j)
    allowed = torch.ones(D, D).tril(-1).bool()
    assert (jac[:, ~allowed] == 0).all()
    # number of paths from each input (context first) to each output, through the masks
    paths = torch.eye(made.net[0].in_features, dtype=torch.float64)
    for layer in made.net:
        if isinstance(layer, MaskedLinear):
            paths = layer.mask @ paths
    paths = paths.view(2, D, -1)
    assert (paths[:, :, : context_features or 0] > 0).all()  # context reaches every output
    if hidden >= D - 1:  # enough hidden units for every allowed connection
        assert torch.equal(paths[:, :, context_features or 0 :] > 0, allowed.expand(2, D, D))


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("scale_fn", ["exp", "sigmoid"])
@pytest.mark.parametrize("conditional", [False, True])
def test_autoregressive_layers_pass_the_bijector_checks(
    layer: type, scale_fn: str, conditional: bool
) -> None:
    x, context = _data()
    bijector = layer(D, hidden=16, context_features=K if conditional else None, scale_fn=scale_fn)
    check_bijector(bijector, x, context if conditional else None)


def _jacobian(fn, x: torch.Tensor) -> torch.Tensor:
    return torch.autograd.functional.jacobian(lambda v: fn(v)[0], x)[0, :, 0, :]


def test_maf_forward_jacobian_is_lower_triangular_with_the_scales_on_its_diagonal() -> None:
    maf = MaskedAutoregressive(D, hidden=16).double()
    randomize_parameters(maf, scale=0.5)
    x, _ = _data(1)
    jac = _jacobian(maf, x)
    assert (jac.triu(1) == 0).all()
    assert (jac.tril(-1) != 0).any()
    torch.testing.assert_close(jac.diagonal().log().sum(), maf(x)[1][0])


def test_iaf_sampling_jacobian_is_lower_triangular_in_the_latent() -> None:
    iaf = InverseAutoregressive(D, hidden=16).double()
    randomize_parameters(iaf, scale=0.5)
    z, _ = _data(1)
    jac = _jacobian(iaf.inverse, z)
    assert (jac.triu(1) == 0).all()
    assert (jac.tril(-1) != 0).any()


@pytest.mark.parametrize(
    "layer, parallel", [(MaskedAutoregressive, "forward"), (InverseAutoregressive, "inverse")]
)
def test_one_direction_is_one_pass_and_the_other_is_d_passes(layer: type, parallel: str) -> None:
    bijector = layer(D, hidden=8)
    calls = []
    bijector.made.register_forward_hook(lambda *_: calls.append(1))
    x = torch.randn(3, D)
    for direction in ("forward", "inverse"):
        calls.clear()
        getattr(bijector, direction)(x)
        assert len(calls) == (1 if direction == parallel else D)


@pytest.mark.parametrize("layer", LAYERS)
def test_layers_start_as_the_identity(layer: type) -> None:
    x, _ = _data()
    y, logdet = layer(D).double()(x)
    assert torch.equal(y, x)
    assert torch.equal(logdet, torch.zeros(len(x), dtype=torch.float64))


def test_context_reaches_every_dimension_including_the_first() -> None:
    maf = MaskedAutoregressive(D, hidden=16, context_features=K).double()
    randomize_parameters(maf, scale=0.5)
    x, context = _data(1)
    z1, _ = maf(x, context)
    z2, _ = maf(x, context + 1.0)
    assert (z1 != z2).all()
    with pytest.raises(ValueError, match="context"):
        maf(x)


def test_autoregressive_layers_reject_wrong_event_shapes() -> None:
    with pytest.raises(ValueError, match=r"MaskedAutoregressive was built for event shape \(5,\)"):
        MaskedAutoregressive(D).forward_shape((4,))
    with pytest.raises(ValueError, match="scale_fn"):
        InverseAutoregressive(D, scale_fn="softplus")


@pytest.mark.parametrize("shape", [(D,), (2, 3, 3)])
def test_nice_scaling_passes_the_bijector_checks(shape: tuple[int, ...]) -> None:
    x = torch.randn(3, *shape, dtype=torch.float64)
    check_bijector(NICEScaling(shape), x)
    with pytest.raises(ValueError, match="NICEScaling"):
        NICEScaling(shape).forward_shape((7,))


def test_maf_and_iaf_flatten_images_and_sample_images() -> None:
    for flow in (maf(IMAGE, 2, 8), iaf(IMAGE, 2, 8)):
        assert flow.event_shape == IMAGE and flow.latent_shapes == [(64,)]
        assert isinstance(flow.bijector[0], Reshape)
        layers = [
            b for b in flow.bijector if isinstance(b, (MaskedAutoregressive, InverseAutoregressive))
        ]
        assert len(layers) == 2
        assert flow.sample(3).shape == (3, *IMAGE)


def test_maf_batch_norm_layers_follow_every_made() -> None:
    layers = list(maf(IMAGE, 3, 8, batch_norm_layers=True).bijector)
    names = [type(b).__name__ for b in layers]
    assert names == [
        "Reshape",
        "MaskedAutoregressive",
        "BatchNormBijector",
        "ChannelPermutation",
        "MaskedAutoregressive",
        "BatchNormBijector",
        "ChannelPermutation",
        "MaskedAutoregressive",
        "BatchNormBijector",
    ]


def test_iaf_density_of_data_is_d_made_passes_per_layer() -> None:
    flow = iaf((1, 2, 3), num_layers=2, hidden=8)
    calls: list[int] = []
    for layer in flow.bijector:
        if isinstance(layer, InverseAutoregressive):
            layer.made.register_forward_hook(lambda *_: calls.append(1))
    flow.log_prob(torch.randn(4, 1, 2, 3))
    assert len(calls) == 2 * 6
    calls.clear()
    flow.sample(4)
    assert len(calls) == 2


def test_maf_with_batch_norm_passes_the_bijector_checks_in_eval_mode() -> None:
    flow = maf((1, 2, 3), 2, 8, batch_norm_layers=True).double()
    randomize_parameters(flow, scale=0.3)
    flow(torch.randn(16, 1, 2, 3, dtype=torch.float64))  # move the running statistics
    chain = flow.bijector
    assert isinstance(chain, Chain)
    check_bijector(
        chain, torch.randn(2, 1, 2, 3, dtype=torch.float64), randomize=False, train=False
    )

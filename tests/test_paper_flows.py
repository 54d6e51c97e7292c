"""The paper flows' own layers and architectures: NICE's logistic prior and parity couplings,
RealNVP's batch normalization, residual networks and multi-scale architecture; every image
builder trains, round trips and samples (MAF and IAF on images: test_autoregressive.py)."""

from __future__ import annotations

import math
from typing import Callable

import pytest
import torch
from torch.distributions import SigmoidTransform, TransformedDistribution, Uniform

from checks import check_bijector, jacobian_logdet, randomize_parameters
from glowflow.bijectors.batchnorm import BatchNormBijector
from glowflow.bijectors.coupling import ChannelCoupling, CheckerboardCoupling
from glowflow.bijectors.logistic import LogisticToNormal
from glowflow.bijectors.mlp import mlp_network
from glowflow.bijectors.parity import ParityCoupling
from glowflow.bijectors.permutation import ChannelPermutation
from glowflow.bijectors.realnvp_multiscale import RealNVPMultiScale
from glowflow.bijectors.reshape import Reshape
from glowflow.bijectors.resnet import ResidualBlock, TanhLogScale, resnet_network
from glowflow.bijectors.squeeze import Squeeze
from glowflow.flow import Flow, standard_normal_log_prob
from glowflow.models import iaf, maf, nice, realnvp

IMAGE = (1, 8, 8)


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Default initializations draw from the global RNG: make every test order-independent."""
    torch.manual_seed(0)


def _images(batch: int = 3, shape: tuple[int, ...] = IMAGE, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, *shape, generator=generator, dtype=torch.float64)


def _logistic_log_prob(z: torch.Tensor) -> torch.Tensor:
    """The standard logistic density, from torch.distributions (an independent reference)."""
    zeros, ones = torch.zeros_like(z), torch.ones_like(z)
    return TransformedDistribution(Uniform(zeros, ones), [SigmoidTransform().inv]).log_prob(z)


# ------------------------------------------------------------------ NICE's logistic prior
def test_logistic_to_normal_passes_the_bijector_checks() -> None:
    check_bijector(LogisticToNormal(), 3.0 * _images(3, (6,)))
    check_bijector(LogisticToNormal(), _images(2, (2, 2, 3)))


def test_logistic_to_normal_matches_the_cdfs_and_inverts_in_float32_out_to_80() -> None:
    z32 = torch.cat([torch.linspace(-80, 80, 321), torch.tensor([-1e-4, 0.0, 1e-4])])
    z = z32.double()
    u = LogisticToNormal()(z32.view(1, -1))[0].view(-1)
    assert torch.isfinite(u).all()
    # Phi(u) = sigmoid(z), compared where float64 can tell (the tails in log space)
    torch.testing.assert_close(
        torch.special.log_ndtr(u.double()), torch.nn.functional.logsigmoid(z), rtol=1e-5, atol=1e-6
    )
    back = LogisticToNormal().inverse(u.view(1, -1))[0].view(-1)
    torch.testing.assert_close(back, z32, rtol=2e-6, atol=2e-6)
    # float32 log-dets agree with the float64 ones
    logdet32 = torch.stack([LogisticToNormal()(v.view(1, 1))[1][0] for v in z32])
    logdet64 = torch.stack([LogisticToNormal()(v.view(1, 1))[1][0] for v in z])
    torch.testing.assert_close(logdet32.double(), logdet64, rtol=1e-5, atol=1e-4)


def test_logistic_to_normal_logdet_equals_autograd_far_in_the_tails() -> None:
    z = torch.tensor([[-60.0, -25.0, -3.0, 0.0, 2.0, 30.0, 60.0]], dtype=torch.float64)
    bijector = LogisticToNormal()
    expected = jacobian_logdet(lambda v: bijector(v)[0], z)
    torch.testing.assert_close(bijector(z)[1], expected, rtol=1e-10, atol=1e-10)


def test_a_flow_over_logistic_to_normal_has_exactly_the_logistic_density() -> None:
    z = 4.0 * _images(5, (7,))
    flow = Flow(LogisticToNormal(), event_shape=(7,))
    torch.testing.assert_close(
        flow.log_prob(z), _logistic_log_prob(z).sum(dim=1), rtol=0, atol=1e-12
    )


def test_nice_with_the_logistic_prior_has_the_papers_density() -> None:
    flow = nice(IMAGE, hidden=16, num_hidden_layers=2, prior="logistic").double()
    randomize_parameters(flow, scale=0.3)
    x = _images()
    z = x
    for layer in list(flow.bijector)[:-1]:  # all but LogisticToNormal: z = S(f_L(...))
        z, _ = layer(z)
    scaling = flow.bijector[-2]
    expected = _logistic_log_prob(z).sum(dim=1) + scaling.log_scale.sum()
    torch.testing.assert_close(flow.log_prob(x), expected, rtol=0, atol=1e-10)


# ------------------------------------------------------------------ NICE's parity coupling
@pytest.mark.parametrize("features", [5, 6])
@pytest.mark.parametrize("parity", [0, 1])
@pytest.mark.parametrize("kind", ["additive", "affine"])
def test_parity_coupling_passes_the_bijector_checks(features: int, parity: int, kind: str) -> None:
    conditioning = len(range(parity, features, 2))
    transformed = features - conditioning
    outputs = transformed if kind == "additive" else 2 * transformed
    network = mlp_network(conditioning, outputs, 8, 1)
    check_bijector(ParityCoupling(features, network, kind, parity=parity), _images(3, (features,)))


def test_parity_coupling_changes_exactly_the_other_parity() -> None:
    coupling = ParityCoupling(7, mlp_network(4, 3, 8, 1), "additive", parity=0).double()
    randomize_parameters(coupling, scale=1.0)
    x = _images(2, (7,))
    y, _ = coupling(x)
    assert torch.equal(y[:, 0::2], x[:, 0::2])
    assert (y[:, 1::2] != x[:, 1::2]).all()


# ------------------------------------------------------------------ Reshape
def test_reshape_passes_the_bijector_checks_and_checks_sizes() -> None:
    check_bijector(Reshape.flatten((2, 3, 2)), _images(2, (2, 3, 2)))
    check_bijector(Reshape((6,), (1, 2, 3)), _images(2, (6,)))
    with pytest.raises(ValueError, match="different numbers of entries"):
        Reshape((2, 3), (5,))
    with pytest.raises(ValueError, match=r"Reshape's output has event shape \(12,\)"):
        Reshape.flatten((2, 3, 2)).inverse_shape((11,))


# ------------------------------------------------------------------ batch normalization
def _trained_batch_norm(shape: tuple[int, ...]) -> BatchNormBijector:
    """A batch normalization whose running statistics have moved off (0, 1)."""
    layer = BatchNormBijector(shape[0], momentum=0.5).double()
    for seed in range(3):
        layer(2.0 * _images(16, shape, seed) + 1.0)
    return layer


@pytest.mark.parametrize("shape", [(4,), (3, 2, 2)])
def test_batch_norm_in_eval_mode_passes_the_bijector_checks(shape: tuple[int, ...]) -> None:
    layer = _trained_batch_norm(shape)
    assert not torch.allclose(layer.running_var, torch.ones_like(layer.running_var))
    check_bijector(layer, _images(3, shape), train=False)


@pytest.mark.parametrize("shape", [(4,), (3, 2, 2)])
def test_batch_norm_in_training_normalizes_the_batch_and_tracks_running_statistics(
    shape: tuple[int, ...],
) -> None:
    layer = BatchNormBijector(shape[0], momentum=0.25).double()
    with torch.no_grad():
        layer.log_gamma.fill_(math.log(2.0))
        layer.beta.fill_(0.5)
    x = 3.0 * _images(32, shape) - 1.0
    y, logdet = layer(x)
    dims = [d for d in range(x.dim()) if d != 1]
    mean, var = x.mean(dim=dims), x.var(dim=dims, unbiased=False)
    torch.testing.assert_close(y.mean(dim=dims), torch.full_like(mean, 0.5))
    torch.testing.assert_close(y.var(dim=dims, unbiased=False), 4.0 * var / (var + layer.eps))
    positions = math.prod(shape[1:])
    expected = positions * (math.log(2.0) - 0.5 * torch.log(var + layer.eps)).sum()
    torch.testing.assert_close(logdet, expected.expand(32))
    torch.testing.assert_close(layer.running_mean, 0.25 * mean)
    torch.testing.assert_close(layer.running_var, 0.75 + 0.25 * var)
    # inverse and eval use the running statistics: an exact pair
    layer.eval()
    z, ld = layer(x)
    x_back, ld_back = layer.inverse(z)
    torch.testing.assert_close(x_back, x, rtol=0, atol=1e-12)
    torch.testing.assert_close(ld_back, -ld, rtol=0, atol=1e-12)
    assert set(dict(layer.named_buffers())) == {"running_mean", "running_var"}
    assert {"running_mean", "running_var"} <= set(layer.state_dict())


# ------------------------------------------------------------------ residual networks
@pytest.mark.parametrize("normalization", ["batch", "weight"])
def test_resnet_network_starts_at_zero_and_bounds_the_log_scale(normalization: str) -> None:
    network = resnet_network(2, 3, hidden_channels=8, num_res_blocks=2, normalization=normalization)
    x = torch.randn(4, 2, 4, 4)
    assert torch.equal(network(x), torch.zeros(4, 6, 4, 4))
    randomize_parameters(network, scale=1.0)
    shift, log_scale = network(x).chunk(2, dim=1)
    head = network[-1]
    assert isinstance(head, TanhLogScale)
    assert (log_scale.abs() <= head.scale.abs() + 1e-6).all()
    assert shift.abs().max() > 0
    with pytest.raises(ValueError, match="normalization must be one of"):
        resnet_network(2, 3, normalization="layer")


# ------------------------------------------------------------------ RealNVP multi-scale
def _trained_realnvp(**options: object) -> RealNVPMultiScale:
    """A small RealNVP in float64 with random parameters and running statistics set by a few
    training-mode passes, switched to eval mode."""
    options = {"hidden_channels": 4, "num_res_blocks": 1, **options}
    flow = realnvp(IMAGE, **options).double()  # type: ignore[arg-type]
    randomize_parameters(flow, scale=0.1)
    with torch.no_grad():
        for seed in range(2):
            flow(_images(8, seed=seed))
    return flow.eval().bijector


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"normalization": "weight"},
        {"batch_norm_layers": False, "learn_split_prior": True},
        {"num_scales": 3, "normalization": "weight"},
    ],
    ids=["batch", "weight", "split-prior", "3-scales"],
)
def test_realnvp_in_eval_mode_is_an_exact_bijection(options: dict) -> None:
    bijector = _trained_realnvp(**options)
    x = _images(2)
    latents = bijector.forward_levels(x).latents
    x_back, _ = bijector.inverse_levels(latents)
    torch.testing.assert_close(x_back, x, rtol=0, atol=1e-10)
    check_bijector(bijector, x, randomize=False, train=False)


def test_realnvp_has_the_papers_layers_at_each_scale() -> None:
    bijector = realnvp((1, 8, 8), num_scales=3, hidden_channels=4, num_res_blocks=2).bijector
    assert isinstance(bijector, RealNVPMultiScale) and len(bijector.scales) == 3
    for index, scale in enumerate(bijector.scales):
        layers = list(scale)
        last = index == len(bijector.scales) - 1
        couplings = [b for b in layers if isinstance(b, (CheckerboardCoupling, ChannelCoupling))]
        checkerboard = [b for b in couplings if isinstance(b, CheckerboardCoupling)]
        channel = [b for b in couplings if isinstance(b, ChannelCoupling)]
        assert [b.parity for b in checkerboard] == ([0, 1, 0, 1] if last else [0, 1, 0])
        assert len(channel) == (0 if last else 3)
        assert sum(isinstance(b, Squeeze) for b in layers) == (0 if last else 1)
        assert sum(isinstance(b, ChannelPermutation) for b in layers) == (0 if last else 2)
        for coupling in couplings:  # a batch normalization right after every coupling
            assert isinstance(layers[layers.index(coupling) + 1], BatchNormBijector)
            assert coupling.kind == "affine" and coupling.scale_fn == "exp"
            blocks = [m for m in coupling.network.modules() if isinstance(m, ResidualBlock)]
            assert len(blocks) == 2
    assert bijector.latent_shapes == [(2, 4, 4), (4, 2, 2), (4, 2, 2)]


def test_realnvp_channel_masks_alternate_between_the_halves() -> None:
    scale = _trained_realnvp(batch_norm_layers=False, normalization="weight").scales[0]
    layers = list(scale)
    start = layers.index(next(b for b in layers if isinstance(b, Squeeze))) + 1
    h = torch.randn(2, 4, 4, 4, dtype=torch.float64)
    order = torch.arange(4)  # the squeezed channel held at each position
    changed = []
    for layer in layers[start:]:
        out, _ = layer(h)
        if isinstance(layer, ChannelPermutation):
            order = order[layer.perm]
        if isinstance(layer, ChannelCoupling):
            moved = [c for c in range(4) if not torch.equal(out[:, c], h[:, c])]
            changed.append(sorted(int(order[c]) for c in moved))
        h = out
    assert changed == [[2, 3], [0, 1], [2, 3]]  # the second half, the first, the second
    assert torch.equal(order, torch.arange(4))  # and the squeezed order is back
    assert [type(b).__name__ for b in layers[start:]] == [
        "ChannelCoupling",
        "ChannelPermutation",
        "ChannelCoupling",
        "ChannelPermutation",
        "ChannelCoupling",
    ]
    assert torch.equal(layers[start + 1].perm, torch.tensor([2, 3, 0, 1]))


def test_realnvp_levels_carry_their_own_log_dets() -> None:
    bijector = _trained_realnvp(num_scales=3, normalization="weight")
    encoding = bijector.forward_levels(_images(3))
    assert encoding.latent_levels == [0, 1, 2]
    assert len(encoding.level_logdets) == 3
    torch.testing.assert_close(sum(encoding.level_logdets), encoding.logdet)
    flow = Flow(bijector)
    expected = standard_normal_log_prob(encoding.latents) + encoding.logdet
    torch.testing.assert_close(flow.log_prob(_images(3)), expected)


def test_realnvp_checks_latents_on_decoding() -> None:
    bijector = realnvp(IMAGE, hidden_channels=4, num_res_blocks=1).bijector
    with pytest.raises(ValueError, match="expected 2 latents"):
        bijector.inverse_levels([torch.zeros(1, 2, 4, 4)])
    with pytest.raises(ValueError, match="RealNVPMultiScale.inverse: latent 1"):
        bijector.inverse_levels([torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 4, 4)])
    with pytest.raises(ValueError, match=r"RealNVPMultiScale.forward: input must have shape"):
        bijector.forward_levels(torch.zeros(1, 1, 4, 4))


# ------------------------------------------------------------------ every builder trains
BUILDERS: dict[str, Callable[[], Flow]] = {
    "nice": lambda: nice(IMAGE, hidden=32, num_hidden_layers=2),
    "nice_logistic": lambda: nice(IMAGE, hidden=32, num_hidden_layers=2, prior="logistic"),
    "realnvp": lambda: realnvp(IMAGE, hidden_channels=8, num_res_blocks=1),
    "realnvp_weight_norm": lambda: realnvp(
        IMAGE, hidden_channels=8, num_res_blocks=1, normalization="weight", learn_split_prior=True
    ),
    "maf": lambda: maf(IMAGE, 2, 32, batch_norm_layers=True),
    "iaf": lambda: iaf(IMAGE, 2, 32, use_actnorm=True),
}


@pytest.mark.parametrize("name", BUILDERS)
def test_builders_train_without_nans_round_trip_and_sample_images(name: str) -> None:
    flow = BUILDERS[name]()
    data = torch.rand(32, *IMAGE) - 0.5  # dequantized pixels in [-0.5, 0.5)
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-3)
    losses = []
    for _ in range(4):
        loss = -flow.log_prob(data).mean() / flow.num_dims
        optimizer.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in flow.parameters() if p.grad is not None)
        optimizer.step()
        losses.append(float(loss.detach()))
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]
    flow.eval()
    with torch.no_grad():
        x = data[:8]
        latents = flow.encode(x)
        assert [tuple(z.shape[1:]) for z in latents] == flow.latent_shapes
        torch.testing.assert_close(flow.decode(latents), x, rtol=0, atol=1e-5)
        samples = flow.sample(5, temperature=0.7)
    assert samples.shape == (5, *IMAGE) and torch.isfinite(samples).all()


@pytest.mark.parametrize("name", ["realnvp", "maf"])
def test_batch_statistics_are_buffers_that_training_moves_and_eval_freezes(name: str) -> None:
    flow = BUILDERS[name]()
    layer = next(m for m in flow.modules() if isinstance(m, BatchNormBijector))
    before = layer.running_mean.clone()
    flow(torch.rand(16, *IMAGE))
    assert not torch.equal(layer.running_mean, before)
    flow.eval()
    frozen = layer.running_mean.clone()
    flow(torch.rand(16, *IMAGE))
    assert torch.equal(layer.running_mean, frozen)
    assert any(key.endswith("running_var") for key in flow.state_dict())

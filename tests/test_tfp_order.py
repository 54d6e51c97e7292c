"""glowflow.convert.tfp_order: glowflow's per-level latents <-> TFP tfb.Glow's rank-1 latent order."""

from __future__ import annotations

import math

import pytest
import torch

from glowflow.bijectors.squeeze import Squeeze
from glowflow.config import GlowConfig
from glowflow.convert.tfp_order import from_tfp_latent, to_tfp_latent

SHAPE_LISTS = [
    [(2, 4, 4), (8, 2, 2)],  # L=2 default Glow on a (1, 8, 8) image
    [(3, 8, 8), (5, 4, 4), (7, 2, 2)],  # odd channel counts
    [(1, 4, 6), (3, 2, 3)],  # non-square, odd spatial at the top
    [(3, 8, 8), (6, 2, 2)],  # a level without an exit in between (squeezed twice)
    [(5, 3, 3)],  # one level, no exits
    [(6, 8, 8), (12, 4, 4), (24, 2, 2), (5, 1, 1), (43, 1, 1)],  # last block also exits
]


def random_latents(shapes, batch=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch, *shape, generator=generator, dtype=torch.float64) for shape in shapes
    ]


@pytest.mark.parametrize("shapes", SHAPE_LISTS)
def test_round_trip_from_latents(shapes):
    latents = random_latents(shapes)
    z = to_tfp_latent(latents)
    assert z.shape == (3, sum(math.prod(s) for s in shapes))
    back = from_tfp_latent(z, shapes)
    assert len(back) == len(latents)
    for got, want in zip(back, latents):
        assert got.shape == want.shape
        assert torch.equal(got, want)


@pytest.mark.parametrize("shapes", SHAPE_LISTS)
def test_round_trip_from_tfp_and_is_a_permutation(shapes):
    size = sum(math.prod(s) for s in shapes)
    z = torch.arange(2 * size, dtype=torch.float64).reshape(2, size)
    assert torch.equal(to_tfp_latent(from_tfp_latent(z, shapes)), z)
    flat = torch.cat([x.reshape(2, -1) for x in from_tfp_latent(z, shapes)], dim=1)
    assert torch.equal(flat.sort(dim=1).values, z)


def test_glow_config_latent_shapes_round_trip():
    config = GlowConfig(output_shape=(3, 16, 16), num_glow_blocks=3)
    shapes = config.latent_shapes()
    latents = random_latents(shapes, batch=2)
    assert len(to_tfp_latent(latents)[0]) == 3 * 16 * 16
    for got, want in zip(from_tfp_latent(to_tfp_latent(latents), shapes), latents):
        assert torch.equal(got, want)


def test_wrong_size_names_the_expected_size():
    shapes = [(2, 4, 4), (8, 2, 2)]
    with pytest.raises(ValueError, match=r"\(B, 64\)"):
        from_tfp_latent(torch.zeros(2, 63), shapes)
    with pytest.raises(ValueError, match=r"\(B, 64\)"):
        from_tfp_latent(torch.zeros(64), shapes)
    with pytest.raises(ValueError, match="not a 2\\^k squeeze"):
        from_tfp_latent(torch.zeros(2, 2 * 3 * 3 + 8 * 2 * 2), [(2, 3, 3), (8, 2, 2)])


def test_hand_built_tfp_order_two_levels():
    # Level 0 exits z0 (2, 4, 4); the top is (3, 2, 2). TFP: one coarse (2, 2, 3 + 2*4) tensor,
    # channels [top (3) | squeeze(z0) (8)], flattened (H, W, C) row-major; squeeze(z0) channel
    # c*4 + i*2 + j at (y, x) is z0[c, 2y+i, 2x+j].
    z0 = torch.arange(32.0).reshape(1, 2, 4, 4)
    top = 100.0 + torch.arange(12.0).reshape(1, 3, 2, 2)
    expected = []
    for y in range(2):
        for x in range(2):
            expected += [top[0, c, y, x].item() for c in range(3)]
            for c in range(2):
                for i in range(2):
                    for j in range(2):
                        expected.append(z0[0, c, 2 * y + i, 2 * x + j].item())
    z = to_tfp_latent([z0, top])
    assert z.tolist() == [expected]
    assert z[0, :11].tolist() == [100, 104, 108, 0, 1, 4, 5, 16, 17, 20, 21]
    back = from_tfp_latent(z, [(2, 4, 4), (3, 2, 2)])
    assert torch.equal(back[0], z0) and torch.equal(back[1], top)


def tfp_squeeze_nhwc(x):
    """Inverse of TFP's ``Expand`` (glow.py: Reshape [h,w,c]->[h,w,c/4,2,2], Transpose
    perm=[0,3,1,4,2], Reshape ->[2h,2w,c/4]), written from those three ops on (B, H, W, C)."""
    b, h2, w2, c = x.shape
    h, w = h2 // 2, w2 // 2
    y = x.reshape(b, h, 2, w, 2, c)  # [2h, 2w, c] -> [h, n, w, n, c]
    perm = [0, 3, 1, 4, 2]
    inverse = [perm.index(k) for k in range(5)]  # undo Transpose(perm)
    y = y.permute(0, *[1 + k for k in inverse])  # -> [h, w, c, n, n]
    return y.reshape(b, h, w, 4 * c)


def tfp_blockwise_splits(channels, grab_after_block):
    """TFP's Glow._get_blockwise_splits (glow.py), finest level first (before its [::-1])."""
    splits, npass = [], 0
    for i, frac in enumerate(grab_after_block):
        nchan = 4 ** (i + 1) * channels
        ngrab = int((nchan - npass) * frac)
        splits.append([nchan - ngrab - npass, ngrab, npass])
        npass = (npass + ngrab) * 4
    return splits


@pytest.mark.parametrize(
    "image_shape, grabs",
    [
        ((1, 8, 8), (0.5, 0.0)),
        ((3, 16, 8), (0.5, 0.5, 0.0)),
        ((2, 8, 8), (0.25, 0.5, 0.5)),
    ],
)
def test_matches_a_simulation_of_tfp_layout(image_shape, grabs):
    """Identity steps and exits: TFP keeps exited channels in the tensor ([nleave | ngrab |
    npass], Blockwise on the channel axis) and squeezes everything; glowflow takes the last
    ngrab channels out. Both are then the same permutation of the image."""
    channels, height, width = image_shape
    image = torch.arange(2 * channels * height * width, dtype=torch.float64)
    image = image.reshape(2, channels, height, width)
    # glowflow: squeeze, exit the last floor(frac * C) channels.
    latents, h = [], image
    for frac in grabs:
        h, _ = Squeeze()(h)
        cut = h.shape[1] - math.floor(frac * h.shape[1])
        h, exiting = h[:, :cut], h[:, cut:]
        if exiting.shape[1]:
            latents.append(exiting)
    if h.shape[1]:
        latents.append(h)
    # TFP, image -> latent: squeeze the whole NHWC tensor; the splits only route channels.
    t = image.permute(0, 2, 3, 1)
    for nleave, ngrab, npass in tfp_blockwise_splits(channels, grabs):
        t = tfp_squeeze_nhwc(t)
        assert t.shape[-1] == nleave + ngrab + npass
    z_tfp = t.reshape(2, -1)
    assert torch.equal(to_tfp_latent(latents), z_tfp)
    shapes = [tuple(z.shape[1:]) for z in latents]
    assert all(torch.equal(a, b) for a, b in zip(from_tfp_latent(z_tfp, shapes), latents))


def test_squeeze_convention_is_glowflows():
    x = torch.arange(2 * 3 * 4 * 8.0).reshape(2, 3, 4, 8)
    squeezed, _ = Squeeze()(x)
    # One exit squeezed once under a 1-channel top: its channels follow the top's in each pixel.
    top = torch.zeros(2, 1, 2, 4)
    z = to_tfp_latent([x, top]).reshape(2, 2, 4, 1 + 12)[..., 1:]
    assert torch.equal(z.permute(0, 3, 1, 2), squeezed)

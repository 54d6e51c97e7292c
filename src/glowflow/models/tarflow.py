"""TarFlow (Zhai et al. 2025, arXiv:2412.06329): patches of an image through alternating causal
affine transformer blocks, under a standard normal base.

``x (C, H, W) -> [ConstantScale] -> Patchify(p) -> block_1 -> ... -> block_K -> z (T, C p^2)``
with block ``k`` a :class:`~glowflow.bijectors.causal_affine.CausalAffine` reading the tokens
forwards for odd ``k`` and backwards for even ``k``. The latent is token shaped, ``(T, C p^2)``,
like ml-tarflow's noise. Sampling inverts the blocks (cached, plain or Jacobi; optionally with
classifier-free or attention-temperature guidance), see :meth:`TarFlowModel.sample`.

Noise augmentation (TarFlow section 2.3): train on ``x + sigma eps`` (:func:`noise_augment`,
``sigma`` the model's :attr:`TarFlowModel.noise_std`) and clean a sample ``x`` with one step of
score-based denoising, :meth:`TarFlowModel.denoise`: ``x + sigma^2 grad_x log p(x)`` (Tweedie's
formula). ml-tarflow's sigma is for data in ``[-1, 1]``; on glowflow's ``[-0.5, 0.5)`` halve it.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Union

import torch
from torch import Tensor

from ..bijectors.base import zero_logdet
from ..bijectors.causal_affine import (
    SCALES,
    CausalAffine,
    Decoding,
    Guidance,
    JacobiOptions,
    JacobiReport,
)
from ..bijectors.chain import Chain
from ..bijectors.constant_scale import ConstantScale
from ..bijectors.patchify import Patchify
from ..errors import ConfigError
from ..flow import Flow
from ..seeding import seeded


def noise_augment(x: Tensor, std: float, generator: Optional[torch.Generator] = None) -> Tensor:
    """TarFlow's training input ``x + std * eps``, ``eps ~ N(0, I)`` of ``x``'s shape."""
    if std < 0:
        raise ConfigError(f"noise std must be >= 0, got {std}")
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return x + std * noise


def decoding(
    inverse: str = "cached",
    guidance: float = 0.0,
    guidance_rule: str = "tarflow",
    attention_temperature: float = 1.0,
    annealed_guidance: bool = False,
    jacobi_tol: float = 1e-8,
    jacobi_max_iter: int = 32,
    jacobi_chunk: int = 16,
) -> Decoding:
    """The :class:`~glowflow.bijectors.causal_affine.Decoding` of :meth:`TarFlowModel.sample`'s
    keywords (``ConfigError`` for a bad one); ``guidance = 0`` decodes unguided."""
    rule = Guidance(guidance, guidance_rule, attention_temperature, annealed_guidance)
    return Decoding(inverse, rule, JacobiOptions(jacobi_tol, jacobi_max_iter, jacobi_chunk))


class TarFlowInversion(NamedTuple):
    """:meth:`TarFlowModel.invert`'s result: images ``(B, C, H, W)``, ``log|det dx/dz|``
    ``(B,)`` and one :class:`~glowflow.bijectors.causal_affine.JacobiReport` per block in
    decoding order (empty for the sequential inverses)."""

    x: Tensor
    logdet: Tensor
    reports: list[JacobiReport]


class TarFlowModel(Flow):
    """A :class:`~glowflow.Flow` over TarFlow's chain (built by :func:`tarflow`), with its
    sampling options, guidance and denoiser.

    Attributes:
        noise_std: the sigma of noise augmentation (:func:`noise_augment`) the model is trained
            with, and :meth:`denoise`'s default; 0 for none.
    """

    def __init__(
        self,
        bijector: Chain,
        event_shape: Sequence[int],
        num_classes: Optional[int],
        noise_std: float = 0.0,
        validate_args: bool = False,
    ) -> None:
        super().__init__(bijector, event_shape, validate_args)
        self._num_classes = num_classes
        self.noise_std = float(noise_std)

    @property
    def num_classes(self) -> Optional[int]:
        return self._num_classes

    @property
    def blocks(self) -> list[CausalAffine]:
        """The causal affine blocks in data -> latent order."""
        return [b for b in self.bijector.bijectors if isinstance(b, CausalAffine)]

    def invert(
        self, latent: Tensor, y: Optional[Tensor] = None, decoding: Optional[Decoding] = None
    ) -> TarFlowInversion:
        """Latent tokens ``(B, T, D)`` -> images, decoding every block as ``decoding`` says."""
        x, total, reports = latent, zero_logdet(latent), []
        for bijector in reversed(self.bijector.bijectors):
            if isinstance(bijector, CausalAffine):
                x, logdet, report = bijector.invert(x, y, decoding)
                if report is not None:
                    reports.append(report)
            else:
                x, logdet = bijector.inverse(x, y)
            total = total + logdet
        return TarFlowInversion(x, total, reports)

    def decode(
        self,
        latents: Sequence[Tensor],
        y: Optional[Tensor] = None,
        decoding: Optional[Decoding] = None,
    ) -> Tensor:
        """:meth:`Flow.decode` with TarFlow's decoding options (default: the cached inverse)."""
        if len(latents) != 1:
            raise ConfigError(f"TarFlowModel.decode: expected a single latent, got {len(latents)}")
        return self.invert(latents[0], y, decoding).x

    @torch.no_grad()
    def sample(
        self,
        n: int,
        temperature: float = 1.0,
        y: Optional[Tensor] = None,
        generator: Optional[torch.Generator] = None,
        *,
        guidance: float = 0.0,
        guidance_rule: str = "tarflow",
        attention_temperature: float = 1.0,
        annealed_guidance: bool = False,
        inverse: str = "cached",
        jacobi_tol: float = 1e-8,
        jacobi_max_iter: int = 32,
        jacobi_chunk: int = 16,
        denoise: bool = False,
        precision: Optional[str] = None,
    ) -> Tensor:
        """``n`` images from ``N(0, T^2 I)`` latents through the inverse; with ``denoise``
        (for a model trained with noise augmentation, :attr:`noise_std` > 0) each then gets
        the one-step score denoiser :meth:`denoise`.

        ``guidance`` is the guidance weight ``w`` (0: none): for a class-conditional model the
        guide is the null class, for an unconditional one the model with attention temperature
        ``attention_temperature``; ``guidance_rule`` ``"tarflow"`` or ``"logits"`` (STARFlow),
        ``annealed_guidance`` ramps ``w`` over the tokens. ``inverse`` is ``"cached"`` (key/value
        cache), ``"plain"`` or ``"jacobi"`` (chunks of ``jacobi_chunk`` tokens iterated to a
        relative update ``<= jacobi_tol`` or ``jacobi_max_iter`` times). ``y``: ``(n,)`` labels,
        ``-1`` or ``None`` for the null class. ``precision`` as in :meth:`Flow.sample` (the
        denoising step's score runs in it too).
        """
        if temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature}")
        options = decoding(
            inverse,
            guidance,
            guidance_rule,
            attention_temperature,
            annealed_guidance,
            jacobi_tol,
            jacobi_max_iter,
            jacobi_chunk,
        )
        reference = self._reference()
        (shape,) = self.latent_shapes
        latent = torch.randn(
            n, *shape, generator=generator, device=reference.device, dtype=reference.dtype
        ).mul_(temperature)
        with self.sampling_precision(precision):
            x = self.invert(latent, y, options).x
            return self.denoise(x, y=y) if denoise and self.noise_std > 0 else x

    def score(self, x: Tensor, y: Optional[Tensor] = None) -> Tensor:
        """``grad_x log p(x | y)`` of each example, ``x``'s shape (autograd, graph freed)."""
        with torch.enable_grad():
            leaf = x.detach().requires_grad_()
            (gradient,) = torch.autograd.grad(self.log_prob(leaf, y).sum(), leaf)
        return gradient

    def denoise(
        self,
        x: Tensor,
        sigma: Union[float, Tensor, None] = None,
        y: Optional[Tensor] = None,
    ) -> Tensor:
        """One-step score denoising ``x + sigma^2 grad_x log p(x | y)`` (Tweedie's formula for
        ``x`` observed under ``N(0, sigma^2)`` noise). ``sigma``: a number, a ``(B,)`` tensor,
        or ``None`` for :attr:`noise_std`."""
        sigma = self.noise_std if sigma is None else sigma
        if isinstance(sigma, Tensor):
            sigma = sigma.to(x.dtype).view(-1, *[1] * (x.dim() - 1))
        return (x + sigma**2 * self.score(x, y)).detach()


def tarflow(
    event_shape: Sequence[int],
    patch_size: int,
    channels: int,
    num_blocks: int,
    layers_per_block: Union[int, Sequence[int]],
    num_classes: Optional[int] = None,
    *,
    head_dim: int = 64,
    expansion: int = 4,
    start_token: bool = False,
    scale: str = "exp",
    noise_std: float = 0.0,
    input_scale: float = 1.0,
    seed: Optional[int] = None,
    validate_args: bool = False,
) -> TarFlowModel:
    """A TarFlow for images ``event_shape = (C, H, W)``.

    Args:
        patch_size: ``p``; ``H`` and ``W`` divisible by it. ``T = HW / p^2`` tokens of
            ``C p^2`` entries.
        channels: the transformers' width (ml-tarflow's ``channels``).
        num_blocks: causal affine blocks, alternately forwards and backwards.
        layers_per_block: transformer layers of every block, or one count per block in data ->
            latent order (STARFlow's deep-shallow design: a deep block then shallow ones).
        num_classes: classes of a class-conditional model (labels ``0 .. K-1``, ``-1`` the null
            class), ``None`` for unconditional.
        head_dim: channels per attention head (ml-tarflow: 64).
        expansion: MLP expansion.
        start_token: STARFlow's learned start token in every block.
        scale: ``"exp"`` (TarFlow) or ``"softplus"`` (STARFlow).
        noise_std: the noise augmentation sigma it is trained with (:attr:`TarFlowModel.noise_std`).
        input_scale: a fixed first map ``x -> input_scale x`` (2 for a model of ``[-1, 1]`` data
            on glowflow's ``[-0.5, 0.5)``); 1 for none.
        seed: seeds the initialization.
    """
    event_shape = tuple(int(s) for s in event_shape)
    if len(event_shape) != 3:
        raise ConfigError(f"tarflow: event_shape must be (C, H, W), got {event_shape}")
    if patch_size < 1 or event_shape[1] % patch_size or event_shape[2] % patch_size:
        raise ConfigError(
            f"tarflow: patch_size {patch_size} must divide the image size {event_shape[1:]}"
        )
    if num_blocks < 1:
        raise ConfigError(f"tarflow: num_blocks must be >= 1, got {num_blocks}")
    layers = (
        [layers_per_block] * num_blocks
        if isinstance(layers_per_block, int)
        else [int(n) for n in layers_per_block]
    )
    if len(layers) != num_blocks or min(layers) < 1:
        raise ConfigError(
            f"tarflow: layers_per_block must be a positive count or one per block "
            f"({num_blocks}), got {layers_per_block}"
        )
    if head_dim < 1 or channels % head_dim:
        raise ConfigError(f"tarflow: channels {channels} must be a multiple of head_dim {head_dim}")
    if scale not in SCALES:
        raise ConfigError(f"tarflow: scale must be one of {SCALES}, got {scale!r}")
    if noise_std < 0:
        raise ConfigError(f"tarflow: noise_std must be >= 0, got {noise_std}")
    patchify = Patchify(patch_size, event_shape)
    num_tokens, token_dim = patchify.forward_shape(event_shape)
    with seeded(seed):
        blocks = [
            CausalAffine(
                num_tokens,
                token_dim,
                channels,
                count,
                head_dim,
                expansion,
                num_classes,
                reverse=index % 2 == 1,
                start_token=start_token,
                scale=scale,
            )
            for index, count in enumerate(layers)
        ]
    front = [] if input_scale == 1.0 else [ConstantScale(input_scale, event_shape)]
    chain = Chain(*front, patchify, *blocks, event_shape=event_shape)
    return TarFlowModel(chain, event_shape, num_classes, noise_std, validate_args)

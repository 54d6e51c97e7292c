"""TarFlow's autoregressive affine block on tokens: a causal transformer predicts each token's
shift and scale from the tokens before it.

S. Zhai, R. Zhang, P. Nakkiran, D. Berthelot, J. Gu, H. Zheng, T. Chen, M. A. Bautista,
N. Jaitly, J. Susskind, *Normalizing Flows are Capable Generative Models*, ICML 2025,
arXiv:2412.06329 (TarFlow, its ``MetaBlock``); with options of its successor STARFlow
(J. Gu et al. 2025, arXiv:2506.06276): a learned start token, a softplus scale, the
logits-guided classifier-free guidance and block-wise Jacobi decoding (see also the
Gauss-Seidel-Jacobi analysis of TarFlow sampling, arXiv:2505.12849).

On tokens ``x`` of shape ``(B, T, D)`` (in the block's order: reversed when ``reverse``), the
network reads ``u_s = x_s`` for ``s = 0 .. T-2`` -- or, with a start token ``x_start``,
``u_0 = x_start`` and ``u_s = x_{s-1}`` for ``s = 1 .. T-1`` -- and for token ``t`` (``t = s + 1``,
resp. ``t = s``):

1. ``h_s = W_in u_s + p_s + e_y``  (positional embedding ``p``, class embedding ``e_y``);
2. ``h = CausalTransformer(h)``  (position ``s`` attends to positions ``<= s``);
3. ``[a_t, b_t] = W_out h_s``  (``W_out`` zero-initialized: the block starts as the identity);
4. ``z_t = (x_t - b_t) * exp(-a_t)``, ``log|det dz/dx| = -sum_{t,d} a_{t,d}``.

So ``a_t, b_t`` depend on ``x_{<t}`` only, the Jacobian is triangular, and the inverse
``x_t = z_t exp(a_t) + b_t`` runs token by token. Without a start token the first token passes
unchanged (``a_0 = b_0 = 0``). ``scale="softplus"`` uses ``sigma_t = softplus(a_t + log(e - 1))``
for ``exp(a_t)`` (1 at ``a_t = 0``). The log-det is the SUM over all ``T D`` entries;
ml-tarflow reports the per-entry mean (:func:`logdet_mean_to_sum` converts).

The label ``y`` (``context``, ``(B,)`` integers) picks a learned class embedding; ``y < 0`` and
``context=None`` mean the null class, the mean of the class embeddings (TarFlow's, trained by
dropping labels), which classifier-free guidance uses as the unconditional model. The flow's
own arithmetic (step 4, the log-det, the guidance rules) runs in float32 on the network's
output cast to the input's dtype, whatever the networks' precision.

Inverses (:meth:`CausalAffine.invert`): ``"cached"`` (default) decodes one position at a time
with a preallocated key/value cache; ``"plain"`` recomputes the whole prefix for each token;
``"jacobi"`` iterates ``x <- f^{-1}``-step on chunks of tokens in parallel until the relative
update is at most ``tol`` (or ``max_iter``), and reports how far the result is from solving
``f(x) = z``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .base import Bijector, logdet_dtype, sum_except_batch, zero_logdet
from .transformer import KVCache, TransformerStack

SCALES = ("exp", "softplus")
"""How the scale follows from the network's raw output ``a``: ``exp(a)`` or STARFlow's
``softplus(a + log(e - 1))``."""

INVERSE_METHODS = ("cached", "plain", "jacobi")
"""The inverses :meth:`CausalAffine.invert` offers."""

GUIDANCE_RULES = ("tarflow", "logits")
"""Classifier-free guidance rules: TarFlow's extrapolation of the raw outputs, STARFlow's
logits-guided rule (:func:`tarflow_guidance`, :func:`logits_guidance`)."""

_SOFTPLUS_ONE = math.log(math.e - 1.0)  # softplus(_SOFTPLUS_ONE) = 1


def logdet_mean_to_sum(mean: Tensor, num_dims: int) -> Tensor:
    """ml-tarflow's per-entry log-det (its ``-a.mean()`` per block, summed over blocks) as the
    log-det glowflow uses: the sum over the ``num_dims = T D`` entries, ``mean * num_dims``."""
    return mean * num_dims


def logdet_sum_to_mean(total: Tensor, num_dims: int) -> Tensor:
    """The inverse of :func:`logdet_mean_to_sum`: ``total / num_dims``."""
    return total / num_dims


def tarflow_guidance(
    a: Tensor, b: Tensor, a_guide: Tensor, b_guide: Tensor, weight: Union[float, Tensor]
) -> tuple[Tensor, Tensor]:
    """TarFlow's guidance of the raw outputs: ``a + w (a - a_u)``, ``b + w (b - b_u)``."""
    return a + weight * (a - a_guide), b + weight * (b - b_guide)


def logits_guidance(
    log_sigma: Tensor,
    mu: Tensor,
    log_sigma_guide: Tensor,
    mu_guide: Tensor,
    weight: Union[float, Tensor],
) -> tuple[Tensor, Tensor]:
    """STARFlow's logits-guided rule for ``x = sigma z + mu``, from ``(1 + w) log p_c - w log
    p_u`` of the two Gaussians: with ``s = min(sigma_c / sigma_u, 1)^2``,
    ``sigma = sigma_c / sqrt(1 + w - w s)`` and ``mu = ((1 + w) mu_c - w s mu_u) / (1 + w -
    w s)``. Returns ``(log sigma, mu)``; ``w = 0`` gives ``(log sigma_c, mu_c)`` exactly."""
    s = torch.exp(2.0 * (log_sigma - log_sigma_guide).clamp(max=0.0))
    denominator = 1.0 + weight - weight * s
    guided_mu = ((1.0 + weight) * mu - weight * s * mu_guide) / denominator
    return log_sigma - 0.5 * torch.log(denominator), guided_mu


@dataclass(frozen=True)
class Guidance:
    """Classifier-free guidance while decoding.

    The guide is the same block with the null class (class-conditional blocks) and attention
    temperature ``attention_temperature`` (TarFlow applies it to the guide only; for an
    unconditional block, a temperature other than 1 is what makes the guide differ). Each
    token's parameters become ``rule(conditional, guide, w)`` with ``w = weight``, or ``w =
    weight (s + 1) / S`` at step ``s`` of ``S`` when ``annealed``. ``weight = 0`` decodes
    without guidance.
    """

    weight: float
    rule: str = "tarflow"
    attention_temperature: float = 1.0
    annealed: bool = False

    def __post_init__(self) -> None:
        if self.rule not in GUIDANCE_RULES:
            raise ConfigError(f"guidance rule must be one of {GUIDANCE_RULES}, got {self.rule!r}")
        if not self.weight >= 0:
            raise ConfigError(f"guidance weight must be >= 0, got {self.weight}")
        if not self.attention_temperature > 0:
            raise ConfigError(
                f"guidance attention temperature must be > 0, got {self.attention_temperature}"
            )


@dataclass(frozen=True)
class JacobiOptions:
    """Block-wise Jacobi decoding: chunks of ``chunk`` positions, each iterated until the
    relative update ``mean((x_new - x)^2) / mean(x_new^2)`` is at most ``tol`` or for
    ``max_iter`` iterations. A chunk of ``n`` positions is exact after ``n`` iterations (each
    fixes one more token), so ``max_iter >= chunk`` with ``tol = 0`` reproduces the sequential
    inverse to float rounding."""

    tol: float = 1e-8
    max_iter: int = 32
    chunk: int = 16

    def __post_init__(self) -> None:
        if not self.tol >= 0:
            raise ConfigError(f"jacobi tol must be >= 0, got {self.tol}")
        if self.max_iter < 1 or self.chunk < 1:
            raise ConfigError(
                f"jacobi max_iter and chunk must be >= 1, got {self.max_iter}, {self.chunk}"
            )


@dataclass(frozen=True)
class Decoding:
    """How :meth:`CausalAffine.invert` decodes: ``method`` one of :data:`INVERSE_METHODS`,
    optional :class:`Guidance`, and the :class:`JacobiOptions` of ``method="jacobi"``."""

    method: str = "cached"
    guidance: Optional[Guidance] = None
    jacobi: JacobiOptions = field(default_factory=JacobiOptions)

    def __post_init__(self) -> None:
        if self.method not in INVERSE_METHODS:
            raise ConfigError(f"inverse must be one of {INVERSE_METHODS}, got {self.method!r}")


@dataclass
class JacobiReport:
    """What a Jacobi decoding did: per chunk the iterations and the last relative update, and
    ``residual = max |f(x) - z|`` of the result (one parallel pass of the decoded map; zero
    exactly when ``x`` is the exact inverse, since ``f`` is a bijection)."""

    iterations: list[int]
    updates: list[float]
    residual: float


class Inversion(NamedTuple):
    """:meth:`CausalAffine.invert`'s result: the tokens, ``log|det dx/dz|`` ``(B,)`` and the
    Jacobi report (``None`` for the sequential methods)."""

    x: Tensor
    logdet: Tensor
    report: Optional[JacobiReport]


class _Branch(NamedTuple):
    """One network evaluation of a decoding: its class embedding and attention temperature."""

    embedding: Optional[Tensor]
    temperature: float


class CausalAffine(Bijector):
    """TarFlow's causal affine block on tokens ``(B, T, D)`` (equations in the module docstring).

    Args:
        num_tokens: ``T``.
        token_dim: ``D``, the entries of a token (``C p^2`` for ``p x p`` patches).
        width: the transformer's width.
        num_layers: transformer layers.
        head_dim: channels per attention head (ml-tarflow: 64).
        expansion: MLP expansion factor.
        num_classes: classes of a class-conditional block, ``None`` for unconditional.
        reverse: the block reads the tokens in reversed order (TarFlow alternates).
        start_token: STARFlow's learned start token, so the first token is transformed too.
        scale: ``"exp"`` or ``"softplus"`` (:data:`SCALES`).

    Parameter names: ``proj_in``, ``pos_embed`` ``(T, width)`` (by position in the original
    token order), ``class_embed`` ``(num_classes, width)``, ``start`` ``(1, D)``,
    ``transformer``, ``proj_out`` (``2D`` outputs: ``a`` then ``b``).
    """

    def __init__(
        self,
        num_tokens: int,
        token_dim: int,
        width: int,
        num_layers: int,
        head_dim: int = 64,
        expansion: int = 4,
        num_classes: Optional[int] = None,
        reverse: bool = False,
        start_token: bool = False,
        scale: str = "exp",
    ) -> None:
        super().__init__()
        if scale not in SCALES:
            raise ConfigError(f"scale must be one of {SCALES}, got {scale!r}")
        if num_tokens < (1 if start_token else 2):
            raise ConfigError(
                f"CausalAffine needs at least {1 if start_token else 2} tokens, got {num_tokens}"
            )
        if num_classes is not None and num_classes < 1:
            raise ConfigError(f"num_classes must be >= 1 or None, got {num_classes}")
        self.event_shape = (num_tokens, token_dim)
        self.num_tokens = num_tokens
        self.token_dim = token_dim
        self.num_classes = num_classes
        self.reverse = reverse
        self.scale = scale
        self.offset = 0 if start_token else 1
        """Token ``t`` takes its parameters from network position ``t - offset``."""
        self.num_steps = num_tokens - self.offset
        """Network positions, the steps of a sequential decoding."""
        self.proj_in = nn.Linear(token_dim, width)
        self.pos_embed = nn.Parameter(torch.randn(num_tokens, width) * 1e-2)
        self.class_embed = (
            nn.Parameter(torch.randn(num_classes, width) * 1e-2) if num_classes else None
        )
        self.start = nn.Parameter(torch.randn(1, token_dim)) if start_token else None
        self.transformer = TransformerStack(width, num_layers, head_dim, expansion)
        self.proj_out = nn.Linear(width, 2 * token_dim)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    # -- pieces ---------------------------------------------------------------------------

    def _order(self, x: Tensor) -> Tensor:
        return x.flip(1) if self.reverse else x

    def _labels_embedding(self, context: Optional[Tensor], batch: int) -> Optional[Tensor]:
        """``(B, 1, width)`` class embeddings of the labels (``< 0`` or ``None``: the null
        class, the mean embedding), ``None`` for an unconditional block."""
        if self.class_embed is None:
            return None
        null = self.class_embed.mean(dim=0)
        if context is None:
            return null.expand(batch, 1, -1)
        if context.shape != (batch,) or context.is_floating_point():
            raise ConfigError(
                f"CausalAffine: labels must be a ({batch},) integer tensor, got "
                f"{tuple(context.shape)} {context.dtype}"
            )
        if self.validate_args and bool((context >= self.num_classes).any()):
            raise ConfigError(f"CausalAffine: labels must be < {self.num_classes}")
        labels = context.long()
        embedded = self.class_embed[labels.clamp(min=0)]
        return torch.where((labels < 0).view(-1, 1), null, embedded).unsqueeze(1)

    def _branches(
        self, context: Optional[Tensor], batch: int, guidance: Optional[Guidance]
    ) -> list[_Branch]:
        """The conditional evaluation and, with guidance, the guide's (null class)."""
        conditional = _Branch(self._labels_embedding(context, batch), 1.0)
        if guidance is None:
            return [conditional]
        guide = _Branch(self._labels_embedding(None, batch), guidance.attention_temperature)
        return [conditional, guide]

    def _inputs(self, x: Tensor, start: int, end: int) -> Tensor:
        """The network's inputs ``u_s`` for positions ``[start, end)`` from tokens ``x`` (in the
        block's order), a new tensor."""
        if self.start is None:
            return x[:, start:end].clone()
        previous = x[:, max(start - 1, 0) : end - 1]
        if start > 0:
            return previous.clone()
        first = self.start.to(x.dtype).expand(x.shape[0], 1, -1)
        return torch.cat([first, previous], dim=1)

    def _raw(
        self, u: Tensor, start: int, branch: _Branch, cache: Optional[KVCache]
    ) -> tuple[Tensor, Tensor]:
        """The network's ``(a, b)`` ``(B, n, D)`` at positions ``[start, start + n)`` for inputs
        ``u`` ``(B, n, D)``, cast to ``u``'s dtype (float32 under autocast)."""
        positions = self.pos_embed.flip(0) if self.reverse else self.pos_embed
        h = self.proj_in(u) + positions[start : start + u.shape[1]]
        if branch.embedding is not None:
            h = h + branch.embedding
        h = self.transformer(h, True, branch.temperature, cache, start)
        a, b = self.proj_out(h).to(u.dtype).chunk(2, dim=-1)
        return a, b

    def _log_sigma(self, a: Tensor) -> Tensor:
        return a if self.scale == "exp" else torch.log(F.softplus(a + _SOFTPLUS_ONE))

    def _params(
        self,
        u: Tensor,
        start: int,
        branches: list[_Branch],
        guidance: Optional[Guidance],
        caches: Optional[list[KVCache]],
    ) -> tuple[Tensor, Tensor]:
        """``(log sigma, mu)`` ``(B, n, D)`` of the tokens whose network positions are
        ``[start, start + n)``, guided when ``guidance`` is given."""
        a, b = self._raw(u, start, branches[0], None if caches is None else caches[0])
        if guidance is None:
            return self._log_sigma(a), b
        a_guide, b_guide = self._raw(u, start, branches[1], None if caches is None else caches[1])
        weight: Union[float, Tensor] = guidance.weight
        if guidance.annealed:
            steps = torch.arange(start + 1, start + u.shape[1] + 1, device=u.device, dtype=u.dtype)
            weight = (guidance.weight * steps / self.num_steps).view(-1, 1)
        if guidance.rule == "tarflow":
            a, b = tarflow_guidance(a, b, a_guide, b_guide, weight)
            return self._log_sigma(a), b
        return logits_guidance(self._log_sigma(a), b, self._log_sigma(a_guide), b_guide, weight)

    def _all_params(
        self, x: Tensor, branches: list[_Branch], guidance: Optional[Guidance]
    ) -> tuple[Tensor, Tensor]:
        """``(log sigma, mu)`` ``(B, T, D)`` of every token in one parallel pass over ``x``;
        the first token's are zero without a start token."""
        log_sigma, mu = self._params(
            self._inputs(x, 0, self.num_steps), 0, branches, guidance, None
        )
        if self.offset:
            log_sigma, mu = F.pad(log_sigma, (0, 0, 1, 0)), F.pad(mu, (0, 0, 1, 0))
        return log_sigma, mu

    # -- the bijector ---------------------------------------------------------------------

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """``z = (x - mu) exp(-log sigma)`` token-wise, ``log|det| = -sum log sigma`` ``(B,)``."""
        self.forward_shape(tuple(x.shape[1:]))
        ordered = self._order(x)
        log_sigma, mu = self._all_params(ordered, self._branches(context, x.shape[0], None), None)
        z = (ordered - mu) * torch.exp(-log_sigma)
        return self._order(z), -sum_except_batch(log_sigma)

    def inverse(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """The cached sequential inverse (:meth:`invert` with the default :class:`Decoding`)."""
        inversion = self.invert(y, context)
        return inversion.x, inversion.logdet

    def invert(
        self, z: Tensor, context: Optional[Tensor] = None, decoding: Optional[Decoding] = None
    ) -> Inversion:
        """``x`` with ``f(x) = z`` (guided: the guided generative map), its ``log|det dx/dz| =
        sum log sigma`` and, for ``"jacobi"``, a :class:`JacobiReport`."""
        decoding = decoding or Decoding()
        self.forward_shape(tuple(z.shape[1:]))
        guidance = decoding.guidance
        if guidance is not None and guidance.weight == 0:
            guidance = None  # guidance 0 is plain decoding, bit for bit
        branches = self._branches(context, z.shape[0], guidance)
        ordered = self._order(z)
        if decoding.method == "jacobi":
            x, logdet, report = self._jacobi(ordered, branches, guidance, decoding.jacobi)
        else:
            cached = decoding.method == "cached"
            x, logdet = self._sequential(ordered, branches, guidance, cached)
            report = None
        return Inversion(self._order(x), logdet, report)

    def _sequential(
        self, z: Tensor, branches: list[_Branch], guidance: Optional[Guidance], cached: bool
    ) -> tuple[Tensor, Tensor]:
        """Token by token: step ``s`` computes token ``s + offset`` from the tokens before it,
        reading position ``s`` alone with the key/value cache, or all positions ``<= s``."""
        caches = [self.transformer.new_cache(self.num_steps) for _ in branches] if cached else None
        x = z.clone()
        logdet = zero_logdet(z)
        for step in range(self.num_steps):
            first = step if cached else 0
            log_sigma, mu = self._params(
                self._inputs(x, first, step + 1), first, branches, guidance, caches
            )
            log_sigma, mu = log_sigma[:, -1], mu[:, -1]
            token = step + self.offset
            x[:, token] = z[:, token] * torch.exp(log_sigma) + mu
            logdet = logdet + log_sigma.to(logdet_dtype(z)).sum(dim=1)
        return x, logdet

    def _jacobi(
        self,
        z: Tensor,
        branches: list[_Branch],
        guidance: Optional[Guidance],
        options: JacobiOptions,
    ) -> tuple[Tensor, Tensor, JacobiReport]:
        """Block-wise Jacobi: for each chunk of positions, iterate ``x_chunk <- z_chunk sigma(x)
        + mu(x)`` in one parallel pass per iteration (the prefix's keys and values cached)."""
        caches = [self.transformer.new_cache(self.num_steps) for _ in branches]
        x = z.clone()  # the initial guess of every token: its latent
        iterations: list[int] = []
        updates: list[float] = []
        tiny = torch.finfo(z.dtype).tiny
        for start in range(0, self.num_steps, options.chunk):
            end = min(start + options.chunk, self.num_steps)
            first, last = start + self.offset, end + self.offset
            iteration, update = 0, math.inf
            while iteration < options.max_iter and update > options.tol:
                iteration += 1
                log_sigma, mu = self._params(
                    self._inputs(x, start, end), start, branches, guidance, caches
                )
                new = z[:, first:last] * torch.exp(log_sigma) + mu
                change = (new - x[:, first:last]).pow(2).mean() / new.pow(2).mean().clamp_min(tiny)
                x[:, first:last] = new
                update = float(change.detach())
            iterations.append(iteration)
            updates.append(update)
        log_sigma, mu = self._all_params(x, branches, guidance)
        residual = float(((x - mu) * torch.exp(-log_sigma) - z).abs().max().detach())
        return x, sum_except_batch(log_sigma), JacobiReport(iterations, updates, residual)

    def extra_repr(self) -> str:
        return (
            f"num_tokens={self.num_tokens}, token_dim={self.token_dim}, "
            f"num_classes={self.num_classes}, reverse={self.reverse}, "
            f"start_token={self.start is not None}, scale={self.scale!r}"
        )

"""Affine autoregressive flows: MADE networks, MAF and IAF.

Both bijectors share one affine autoregressive map ``g`` on vectors ``(B, D)``, in the
natural order ``1..D`` (stack them with :meth:`ChannelPermutation.reverse` to vary it):

    ``g(u)_i = u_i * s_i + t_i``,   ``(t_i, log s_i) = MADE(g(u)_{<i})`` or ``MADE(u_{<i})``

The MADE network (Germain et al. 2015) gives every ``(t_i, log s_i)`` from the entries before
``i`` in one pass, so whichever direction conditions on its *input* is one parallel pass and
the other direction is ``D`` sequential passes. MAF (Papamakarios et al. 2017) puts the fast
pass on density evaluation, IAF (Kingma et al. 2016) on sampling.

References:
    M. Germain, K. Gregor, I. Murray, H. Larochelle. MADE: Masked Autoencoder for Distribution
    Estimation. ICML 2015, arXiv:1502.03509.
    G. Papamakarios, T. Pavlakou, I. Murray. Masked Autoregressive Flow for Density
    Estimation. NeurIPS 2017, arXiv:1705.07057.
    D. P. Kingma, T. Salimans, R. Jozefowicz, X. Chen, I. Sutskever, M. Welling. Improving
    Variational Inference with Inverse Autoregressive Flow. NeurIPS 2016, arXiv:1606.04934.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .base import Bijector, sum_except_batch
from .coupling import SCALE_FUNCTIONS


class MaskedLinear(nn.Linear):
    """``y = x (W * M)^T + b``: a linear layer whose connections are cut by a fixed 0/1 mask.

    ``mask`` has the weight's shape ``(out_features, in_features)`` and is a buffer.
    """

    def __init__(self, in_features: int, out_features: int, mask: Tensor) -> None:
        super().__init__(in_features, out_features)
        if tuple(mask.shape) != (out_features, in_features):
            raise ConfigError(
                f"MaskedLinear: mask shape {tuple(mask.shape)} is not "
                f"({out_features}, {in_features})"
            )
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """Masked autoencoder (Germain et al. 2015): ``(B, D) -> (B, P, D)`` in one pass, where
    output ``[:, p, i]`` depends only on ``x[:, :i]`` (and on the context).

    Degrees: input ``i`` (0-based) has degree ``i + 1``; context features have degree 0;
    hidden units cycle through degrees ``m, ..., D - 1`` with ``m`` the smallest input degree.
    A unit connects to a hidden unit of degree ``d`` if its degree is ``<= d``, and to output
    ``(p, i)`` if its degree is ``< i + 1``. So output ``(p, 0)`` sees only the context (or is
    a learned constant). The output layer starts at zero.

    Args:
        features: ``D``.
        num_params: ``P``, parameters per dimension (2 for shift and log-scale).
        hidden: width of each hidden layer.
        num_hidden_layers: number of hidden layers (>= 0).
        context_features: size ``K`` of an optional context vector ``(B, K)``.
    """

    def __init__(
        self,
        features: int,
        num_params: int,
        hidden: int = 64,
        num_hidden_layers: int = 2,
        context_features: Optional[int] = None,
    ) -> None:
        super().__init__()
        if features < 1 or num_params < 1 or hidden < 1 or num_hidden_layers < 0:
            raise ConfigError(
                f"MADE needs features, num_params, hidden >= 1 and num_hidden_layers >= 0, got "
                f"{features}, {num_params}, {hidden}, {num_hidden_layers}"
            )
        self.features = features
        self.num_params = num_params
        self.context_features = context_features or 0
        degrees = torch.cat(
            [
                torch.zeros(self.context_features, dtype=torch.long),
                torch.arange(1, features + 1),
            ]
        )
        lowest = int(degrees.min())
        hidden_degrees = lowest + torch.arange(hidden) % max(1, features - lowest)
        layers: list[nn.Module] = []
        for _ in range(num_hidden_layers):
            mask = hidden_degrees[:, None] >= degrees[None, :]
            layers += [MaskedLinear(len(degrees), hidden, mask), nn.ReLU()]
            degrees = hidden_degrees
        output_degrees = torch.arange(1, features + 1).repeat(num_params)
        output = MaskedLinear(
            len(degrees), num_params * features, output_degrees[:, None] > degrees[None, :]
        )
        nn.init.zeros_(output.weight)
        nn.init.zeros_(output.bias)
        self.net = nn.Sequential(*layers, output)

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> Tensor:
        """``x`` ``(B, D)`` and context ``(B, K)`` -> parameters ``(B, P, D)``."""
        if self.context_features:
            if context is None:
                raise ConfigError(f"MADE expects a context of shape (B, {self.context_features})")
            x = torch.cat([context.to(x.dtype), x], dim=1)
        return self.net(x).view(x.shape[0], self.num_params, self.features)


class _AffineAutoregressive(Bijector):
    """The map ``g`` of the module docstring; subclasses choose which direction is ``forward``.

    :meth:`_parallel` computes ``g(u) = u * s(u) + t(u)`` in one MADE pass;
    :meth:`_sequential` computes ``g^{-1}(v)`` in ``D`` passes. Both return the log-det of
    the map they apply.
    """

    def __init__(
        self,
        features: int,
        hidden: int = 64,
        num_hidden_layers: int = 2,
        context_features: Optional[int] = None,
        scale_fn: str = "exp",
    ) -> None:
        super().__init__()
        if scale_fn not in SCALE_FUNCTIONS:
            raise ConfigError(f"scale_fn must be one of {tuple(SCALE_FUNCTIONS)}, got {scale_fn!r}")
        self.features = features
        self.event_shape = (features,)
        self.scale_fn = scale_fn
        self.made = MADE(features, 2, hidden, num_hidden_layers, context_features)

    def _shift_and_log_scale(self, u: Tensor, context: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        shift, raw = self.made(u, context).to(u.dtype).unbind(dim=1)  # float32 under autocast
        return shift, SCALE_FUNCTIONS[self.scale_fn](raw)

    def _parallel(self, u: Tensor, context: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        shift, log_scale = self._shift_and_log_scale(u, context)
        return u * log_scale.exp() + shift, sum_except_batch(log_scale)

    def _sequential(self, v: Tensor, context: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        # After pass k the entries 0..k of u are exact (they only need u_{<=k-1});
        # the last pass's parameters are therefore exact for every entry.
        u = torch.zeros_like(v)
        for _ in range(self.features):
            shift, log_scale = self._shift_and_log_scale(u, context)
            u = (v - shift) * (-log_scale).exp()
        return u, -sum_except_batch(log_scale)

    def extra_repr(self) -> str:
        return f"features={self.features}, scale_fn={self.scale_fn!r}"


class MaskedAutoregressive(_AffineAutoregressive):
    """Masked autoregressive flow layer, MAF (Papamakarios et al. 2017), on ``(B, D)``.

    With ``(t_i, log s_i) = MADE(x_{<i}, context)`` and ``log s = scale_fn(raw)``:

    * forward (density, one parallel pass): ``z_i = x_i * s_i + t_i``,
      ``log|det dz/dx| = sum_i log s_i``;
    * inverse (sampling, ``D`` sequential passes): ``x_i = (z_i - t_i) / s_i`` for
      ``i = 1..D`` in turn, ``log|det dx/dz| = -sum_i log s_i``.

    (The paper writes ``z_i = (x_i - mu_i) exp(-alpha_i)``: ``log s = -alpha``,
    ``t = -mu s``.) The Jacobian ``dz/dx`` is lower triangular. The MADE output layer starts at
    zero, so with ``scale_fn="exp"`` the layer starts as the identity.

    Args:
        features: ``D``.
        hidden: the MADE network's hidden width.
        num_hidden_layers: its hidden layers.
        context_features: ``K`` for a conditional flow, which then needs a ``(B, K)`` context.
        scale_fn: ``"exp"`` (``log s = raw``) or ``"sigmoid"`` (``s = sigmoid(raw + 2)``).
    """

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return self._parallel(x, context)

    def inverse(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return self._sequential(y, context)


class InverseAutoregressive(_AffineAutoregressive):
    """Inverse autoregressive flow layer, IAF (Kingma et al. 2016), on ``(B, D)``.

    The shift and scale condition on the *latent*: ``(t_i, log s_i) = MADE(z_{<i}, context)``.

    * inverse (sampling, one parallel pass): ``x_i = z_i * s_i + t_i``,
      ``log|det dx/dz| = sum_i log s_i``;
    * forward (density, ``D`` sequential passes): ``z_i = (x_i - t_i) / s_i`` for
      ``i = 1..D`` in turn, ``log|det dz/dx| = -sum_i log s_i``.

    The trade-off is MAF's reversed: cheap samples with their log-densities (a variational
    posterior), slow density of external data. ``scale_fn="sigmoid"`` bounds the scale in
    ``(0, 1)`` like the paper's gated update ``sigma * z + (1 - sigma) * m``. Arguments as in
    :class:`MaskedAutoregressive`.
    """

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return self._sequential(x, context)

    def inverse(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return self._parallel(y, context)

"""Learned priors on the top latent, as bijectors: unconditional and class-conditional."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .base import Bijector, Shape, outside_autocast, sum_except_batch


class LearnedPrior(Bijector):
    """A learned diagonal Gaussian ``N(mu, sigma^2)`` on a ``(C, H, W)`` latent, written as the
    bijector that whitens it, so the base distribution stays a standard normal:

    * forward:  ``z' = (z - mu) * exp(-log_sigma)``,  ``log|det| = -sum(log_sigma)``
    * inverse:  ``z = z' * exp(log_sigma) + mu``,     ``log|det| = +sum(log_sigma)``

    ``mu`` and ``log_sigma`` are ``(C, H, W)`` parameters starting at zero (the identity, a
    standard normal prior). Subclasses make them depend on a context through
    :meth:`_mean_and_log_sigma`.
    """

    def __init__(self, event_shape: Shape) -> None:
        super().__init__()
        self.event_shape = tuple(event_shape)
        self.mean = nn.Parameter(torch.zeros(self.event_shape))
        self.log_sigma = nn.Parameter(torch.zeros(self.event_shape))

    def _mean_and_log_sigma(self, context: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        return self.mean.unsqueeze(0), self.log_sigma.unsqueeze(0)

    def forward(self, z: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        mean, log_sigma = self._mean_and_log_sigma(context)
        log_sigma = log_sigma.expand_as(z)
        whitened = (z - mean.to(z.dtype)) * torch.exp(-log_sigma.to(z.dtype))
        return whitened, -sum_except_batch(log_sigma)

    def inverse(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        mean, log_sigma = self._mean_and_log_sigma(context)
        log_sigma = log_sigma.expand_as(y)
        z = y * torch.exp(log_sigma.to(y.dtype)) + mean.to(y.dtype)
        return z, sum_except_batch(log_sigma)

    def extra_repr(self) -> str:
        return f"event_shape={self.event_shape}"


class ClassConditionalPrior(LearnedPrior):
    """A learned Gaussian prior whose mean and log-sigma also depend on the class (the official
    Glow code's ``ycond``, there per channel, here per channel and position); the context is
    the labels.

    ``mu(y) = mu + E_mu[y]`` and ``log_sigma(y) = log_sigma + E_sigma[y]`` with ``E`` a
    ``(num_classes, 2, C, H, W)`` table starting at zero. The context is
    either integer labels of shape ``(B,)`` or class probabilities / one-hot rows
    ``(B, num_classes)`` (a mixture of the table's rows). :meth:`class_logits` is the optional
    classifier on the (pre-prior) top latent, used for the paper's classification loss.
    """

    def __init__(self, event_shape: Shape, num_classes: int) -> None:
        super().__init__(event_shape)
        if num_classes < 2:
            raise ConfigError(f"ClassConditionalPrior needs num_classes >= 2, got {num_classes}")
        self.num_classes = num_classes
        channels = self.event_shape[0]
        self.class_table = nn.Parameter(torch.zeros(num_classes, 2, *self.event_shape))
        self.classifier = nn.Linear(channels, num_classes)

    def class_weights(self, context: Optional[Tensor]) -> Tensor:
        """Context as ``(B, num_classes)`` weights; ``ValueError`` if missing or malformed."""
        if context is None:
            raise ConfigError(
                "ClassConditionalPrior needs the class labels as context (y=...), got None"
            )
        if context.dim() == 1 and not torch.is_floating_point(context):
            if context.numel() and (context.min() < 0 or context.max() >= self.num_classes):
                raise ConfigError(
                    f"class labels must lie in [0, {self.num_classes}), got "
                    f"min {int(context.min())}, max {int(context.max())}"
                )
            return F.one_hot(context.long(), self.num_classes).to(self.class_table.dtype)
        if context.dim() == 2 and context.shape[1] == self.num_classes:
            return context.to(self.class_table.dtype)
        raise ConfigError(
            f"class context must be labels (B,) or weights (B, {self.num_classes}), "
            f"got shape {tuple(context.shape)} and dtype {context.dtype}"
        )

    def _mean_and_log_sigma(self, context: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        weights = self.class_weights(context)
        with outside_autocast(weights):  # a prior term: float32 even under autocast
            offsets = torch.tensordot(weights, self.class_table, dims=1)
        return self.mean + offsets[:, 0], self.log_sigma + offsets[:, 1]

    def class_logits(self, top_latent: Tensor) -> Tensor:
        """Classifier logits ``(B, num_classes)`` from the spatial mean of ``(B, C, H, W)``."""
        return self.classifier(top_latent.mean(dim=(2, 3)))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, num_classes={self.num_classes}"

"""The TarFlow family (Zhai et al. 2025, "Normalizing Flows are Capable Generative Models"):
a masked autoregressive flow over image patches whose conditioners are causal transformers,
the direction alternating between blocks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..config_base import FlowConfig, option
from ..errors import ConfigError
from ..flow import Flow
from ..models.tarflow import tarflow
from .base import Family


@dataclass(frozen=True)
class TarFlowConfig(FlowConfig):
    """TarFlow: ``x -> Patchify(p) -> B`` causal affine blocks on the ``T = HW / p^2`` tokens,
    each ``z_t = (x_t - b_t) exp(-a_t)`` with ``(a_t, b_t)`` a causal transformer's reading of
    the tokens before ``t`` (blocks alternate the token order). The defaults are the paper's
    smallest ImageNet-64 shape scaled to a width that trains on a CPU."""

    event_shape: Optional[tuple[int, ...]] = option(
        None, "image shape (C, H, W) (training: the dataset's)", role="shape"
    )
    patch_size: int = option(2, "patch side p; H and W divisible by it")
    channels: int = option(256, "width of the transformers")
    num_blocks: int = option(4, "causal affine blocks, alternately forwards and backwards")
    layers_per_block: tuple[int, ...] = option(
        (4,),
        "transformer layers per block: one count for all, or one per block (STARFlow's "
        "deep-shallow: a deep block, then shallow ones)",
    )
    head_dim: int = option(64, "channels per attention head")
    expansion: int = option(4, "MLP expansion of the transformer layers")
    start_token: bool = option(
        False, "STARFlow's learned start token, so the first token is transformed too"
    )
    scale: str = option(
        "exp", "the affine scale: exp (TarFlow) or softplus (STARFlow)", ("exp", "softplus")
    )
    num_classes: Optional[int] = option(
        None,
        "classes of a class-conditional model (a class embedding, a null class)",
        role="classes",
    )
    input_scale: float = option(
        1.0,
        "a fixed first map x -> input_scale x (2: a model of [-1, 1] data, as ml-tarflow's, "
        "reading glowflow's [-1/2, 1/2))",
    )
    seed: Optional[int] = option(None, "seed of the initialization", role="seed")

    def check(self) -> None:
        if not self.input_scale > 0:
            raise ConfigError(f"TarFlowConfig.input_scale must be > 0, got {self.input_scale}")
        for name in ("patch_size", "channels", "num_blocks", "head_dim", "expansion"):
            if getattr(self, name) < 1:
                raise ConfigError(f"TarFlowConfig.{name} must be >= 1, got {getattr(self, name)}")
        if len(self.layers_per_block) not in (1, self.num_blocks) or min(self.layers_per_block) < 1:
            raise ConfigError(
                f"TarFlowConfig.layers_per_block needs 1 or num_blocks={self.num_blocks} "
                f"positive counts, got {self.layers_per_block}"
            )


def build(config: TarFlowConfig) -> Flow:
    """The TarFlow of ``config`` (see :func:`glowflow.models.tarflow`)."""
    if config.event_shape is None:
        raise ConfigError("TarFlowConfig.event_shape is none: give the image shape to build it")
    layers = config.layers_per_block
    return tarflow(
        config.event_shape,
        config.patch_size,
        config.channels,
        config.num_blocks,
        layers[0] if len(layers) == 1 else layers,
        config.num_classes,
        head_dim=config.head_dim,
        expansion=config.expansion,
        start_token=config.start_token,
        scale=config.scale,
        input_scale=config.input_scale,
        seed=config.seed,
    )


def _real_data(name: str, dataset: str, steps: int, every: int, **model: Any) -> dict[str, Any]:
    """Preset ``name`` for a downloadable dataset: TarFlow's recipe (AdamW, warm-up then
    cosine) at width 256 with 4 blocks of 4 layers unless ``model`` says otherwise,
    validating, sampling and checkpointing ``every`` steps."""
    return (
        dict(
            name=name,
            dataset=dataset,
            val_size=5000,
            patch_size=2,
            channels=256,
            num_blocks=4,
            layers_per_block=(4,),
            optimizer="adamw",
            warmup_steps=1000,
            batch_size=64,
            max_steps=steps,
            eval_every=every,
            sample_every=every,
            checkpoint_every=every,
        )
        | model
    )


FAMILY = Family(
    name="tarflow",
    summary="TarFlow: autoregressive flow over image patches with causal transformer blocks "
    "(Zhai et al. 2025)",
    config_class=TarFlowConfig,
    builder=build,
    template=TarFlowConfig(channels=64, num_blocks=4, layers_per_block=(2,), head_dim=32),
    presets={
        "tarflow": {"name": "tarflow", "optimizer": "adamw", "lr": 5e-4, "warmup_steps": 100},
        "tarflow-mnist": _real_data("tarflow-mnist", "mnist", 50_000, 2500, patch_size=4, lr=5e-4),
        "tarflow-cifar10": _real_data(
            "tarflow-cifar10",
            "cifar10",
            200_000,
            5000,
            channels=768,
            num_blocks=8,
            layers_per_block=(8,),
            lr=1e-4,
        ),
        "tarflow-cifar10-small": _real_data(
            "tarflow-cifar10-small", "cifar10", 100_000, 2500, patch_size=4, lr=3e-4
        ),
    },
    converters=("tarflow",),
)

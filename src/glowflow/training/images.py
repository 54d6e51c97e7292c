"""Sample grids: samples drawn from fixed latents at several temperatures, one labelled
picture per temperature (:mod:`glowflow.pictures`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional, Sequence

import torch
from torch import Tensor

from ..data import unit_to_image
from ..flow import Flow
from ..pictures import save_picture


@torch.no_grad()
def sample_images(
    flow: Flow,
    count: int,
    temperature: float,
    n_bins: int,
    seed: int,
    y: Optional[Tensor] = None,
    options: Optional[dict[str, Any]] = None,
) -> Tensor:
    """``count`` samples at ``temperature`` as intensities in ``[0, 1]``, ``(count, C, H, W)``.

    The base draws ``eps ~ N(0, I)`` come from a generator seeded with ``seed``, so calls with
    the same seed share their latents and differ only by the scale ``temperature * eps``.
    ``options`` are the family's own sampling keywords (TarFlow's ``guidance``, ``inverse``).
    """
    device = next(flow.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    samples = flow.sample(count, temperature, y=y, generator=generator, **(options or {}))
    return unit_to_image(samples, n_bins)


class ClassLayout(NamedTuple):
    """How the classes ``y`` of a sample grid lie in it (see :func:`class_layout`).

    Attributes:
        by: ``"all"`` (one class), ``"rows"``, ``"columns"`` or ``""`` (no labels or mixed).
        labels: the class of each row or column (``by`` ``"rows"``/``"columns"``), or the one
            class (``"all"``).
    """

    by: str
    labels: list[int]


def class_layout(y: Optional[Tensor], nrow: int) -> ClassLayout:
    """Where the classes of ``y`` ``(N,)`` lie in a grid of ``nrow`` per row: all one class,
    one class per row, one per column, or mixed (also for ``None`` and class weights)."""
    if y is None or y.dim() != 1 or y.is_floating_point():
        return ClassLayout("", [])
    labels = y.tolist()
    if len(set(labels)) == 1:
        return ClassLayout("all", labels[:1])
    rows = [labels[start : start + nrow] for start in range(0, len(labels), nrow)]
    if all(len(set(row)) == 1 for row in rows):
        return ClassLayout("rows", [row[0] for row in rows])
    columns = [labels[j::nrow] for j in range(min(nrow, len(labels)))]
    if all(len(set(column)) == 1 for column in columns):
        return ClassLayout("columns", [column[0] for column in columns])
    return ClassLayout("", [])


def one_per_class(classes: ClassLayout, nrow: int, count: int) -> list[int]:
    """Indices of one sample of each class in a grid of ``count``, ``nrow`` to a row, laid out
    as ``classes`` says (just the first sample when it has no classes or one)."""
    if classes.by == "rows":
        return list(range(0, count, nrow))
    if classes.by == "columns":
        return list(range(min(nrow, count)))
    return [0]


def save_sample_grids(
    flow: Flow,
    count: int,
    temperatures: Sequence[float],
    n_bins: int,
    seed: int,
    path_for: Callable[[float], Path],
    y: Optional[Tensor] = None,
    nrow: Optional[int] = None,
    title: str = "",
    options: Optional[dict[str, Any]] = None,
) -> list[Path]:
    """One picture per temperature, all from the same latents; returns the paths written.

    ``nrow`` samples per row (none: ``ceil(sqrt(count))``). Each picture's title is ``title``
    (e.g. the training step), the class when ``y`` holds one, and the temperature; rows or
    columns that each hold one class are labelled with it. At temperature 0 every latent is
    the prior's mean, so all samples of one class are one image: it is shown once, one image
    per class in a row, labelled with its class.
    """
    nrow = nrow or math.ceil(math.sqrt(count))
    classes = class_layout(y, nrow)
    names = [f"class {k}" for k in classes.labels]
    heading = ([title] if title else []) + (names if classes.by == "all" else [])
    paths = []
    for t in temperatures:
        images = sample_images(flow, count, t, n_bins, seed, y, options)
        per_row, caption = nrow, ""
        rows = names if classes.by == "rows" else []
        columns = names if classes.by == "columns" else []
        if t == 0 and (y is None or classes.by):
            images = images[one_per_class(classes, nrow, count)]
            per_row, rows = len(images), []
            columns = names if classes.by in ("rows", "columns") else []
            caption = (
                f": all {count} samples are this image"
                if classes.by in ("", "all")
                else ": all samples of a class are one image"
            )
        name = ", ".join(heading + [f"T = {t:g}"]) + caption
        paths.append(save_picture(images, path_for(t), per_row, name, rows, columns))
    return paths


def save_run_samples(flow: Flow, config: Any, data: Any, step: int, run_dir: Path) -> list[Path]:
    """A training run's sample grids at ``step`` (``RUN_DIR/samples/step-N_tT.png``, one per
    ``config.sample_temperatures``): ``config.sample_count`` samples, a row per class for a
    class-conditional run. ``flow`` is in the mode it is in (eval, for exact sampling)."""
    y, nrow = None, None
    if config.conditional:
        classes = int(data.num_classes or 0)
        device = next(flow.parameters()).device
        y = torch.arange(config.sample_count, device=device) % classes
        nrow = classes
    return save_sample_grids(
        flow,
        config.sample_count,
        config.sample_temperatures,
        data.n_bins,
        config.seed,
        lambda t: run_dir / "samples" / f"step-{step:08d}_t{t:g}.png",
        y,
        nrow,
        title=f"step {step}",
    )

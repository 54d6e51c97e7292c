"""Every tensor of every converter source, altered (``pytest -m slow tests/test_convert_slow.py``).

For one fixture checkpoint of each source (:data:`test_convert.ALTERED_SOURCES`) and each of
its tensors: the tensor missing, one entry longer on every axis, with an extra axis, and with
a NaN. Each altered file is refused with one line naming the file
(:func:`test_convert.refusal`): never accepted, never a traceback of torch's shape errors.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from test_convert import (
    ALTERED_SOURCES,
    FIXTURES,
    expected,
    options,
    read_source,
    refusal,
    write_source,
)

pytestmark = pytest.mark.slow


def alterations(value: torch.Tensor) -> dict[str, torch.Tensor | None]:
    """What each tensor is replaced by: ``None`` (removed), grown, given an extra axis, and
    (floating tensors) its first entry NaN."""
    changes: dict[str, torch.Tensor | None] = {
        "missing": None,
        "grown": torch.zeros(*(n + 1 for n in value.shape), dtype=value.dtype),
        "extra axis": torch.zeros(*value.shape, 2, dtype=value.dtype),
    }
    if value.is_floating_point() and value.numel():
        nan = value.clone().contiguous()
        nan.view(-1)[0] = float("nan")
        changes["NaN"] = nan
    return changes


@pytest.mark.parametrize("source", sorted(ALTERED_SOURCES))
def test_every_altered_tensor_is_refused_in_one_line(source: str, tmp_path: Path) -> None:
    checkpoint = FIXTURES / ALTERED_SOURCES[source][0]
    settings = options(source, checkpoint.parent, expected(checkpoint.parent)[1])
    contents = read_source(checkpoint)
    state = contents.get("graph", contents)
    path = tmp_path / checkpoint.name
    tried = 0
    for key, value in state.items():
        if not torch.is_tensor(value) or value.dim() == 0:
            continue
        for change, new in alterations(value).items():
            changed = {k: v for k, v in state.items() if k != key}
            if new is not None:
                changed[key] = new
            write_source({**contents, "graph": changed} if "graph" in contents else changed, path)
            try:
                refusal(source, path, **settings)
            except BaseException as error:
                raise AssertionError(f"{source} {key} {change}: {error}") from error
            tried += 1
    assert tried > 100

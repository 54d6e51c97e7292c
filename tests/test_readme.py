"""The README's Python examples run as written (each block in a fresh namespace)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
TUTORIAL = README.parent / "docs" / "tutorial.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # any files an example writes land here
    exec(compile(BLOCKS[index], f"README.md python block {index}", "exec"), {})


def test_the_tutorial_runs_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/tutorial.md's blocks build on each other: one namespace, in order."""
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    blocks = re.findall(r"```python\n(.*?)```", TUTORIAL.read_text(), re.S)
    assert len(blocks) >= 5
    for index, block in enumerate(blocks):
        exec(compile(block, f"docs/tutorial.md python block {index}", "exec"), namespace)


def test_the_readme_lists_exactly_the_settings_a_resume_may_change() -> None:
    from glowflow.training.config import RESUME_MAY_CHANGE

    text = " ".join(README.read_text().split())
    start = text.index("`--resume` may change only")
    listed = re.findall(r"`(\w+)`", text[start : text.index(";", start)])
    assert listed == list(RESUME_MAY_CHANGE)

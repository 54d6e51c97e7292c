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


SHORT = ["--max-steps", "2", "--final-eval-draws", "1", "--sample-count", "4", "--no-progress"]
SMALL = ["--hidden-channels", "8", "--num-steps-per-block", "1", "--init-images", "32"]


def test_the_training_commands_work_in_the_order_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's command-line block, line by line in one folder: each training shortened
    to two steps (and a small model, where the line does not take another model's weights).
    The line that downloads CIFAR-10 for a GPU is left out; nothing else is."""
    from glowflow.cli import main

    text = README.read_text()
    start = text.index("## Training from the command line")
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S).group(1)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my.toml").write_text('preset = "digits"\ncoupling_dropout = 0.2\n')
    ran = 0
    for line in block.splitlines():
        command = line.split("#")[0].split()
        if "--download" in command:
            continue
        assert command[0] == "glowflow", line
        arguments = command[1:]
        if arguments[0] == "train":
            keeps_model = "--resume" in arguments or "--init-from" in arguments
            arguments += SHORT if keeps_model else [*SHORT, *SMALL]
            if "--resume" in arguments:
                arguments[arguments.index("--max-steps") + 1] = "4"
        assert main(arguments) == 0, line
        ran += 1
    assert ran >= 12

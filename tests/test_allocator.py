"""The CPU allocator tuning: what it does to page faults, who applies it, and what the
environment can say about it."""

import platform
import subprocess
import sys

import pytest

import glowflow.cli as cli
from glowflow.allocator import (
    ALLOCATOR_VARIABLE,
    allocator_from_environment,
    check_allocator,
    tune_allocator,
)
from glowflow.errors import ConfigError

glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="retain_freed_memory tunes glibc's malloc",
)

# Reallocates a 64 MiB array 20 times, writing every page, and prints the minor page faults
# of those 20 rounds: with glibc's defaults each block is mapped afresh from the kernel
# (above the largest mmap threshold glibc adapts to, 32 MiB), so its pages fault again (4 KiB
# pages, or 2 MiB ones where numpy asks for transparent huge pages).
_REALLOCATE = """
import resource, sys
import numpy as np
from glowflow.allocator import tune_allocator
tune_allocator(sys.argv[1])
np.ones(8 * 2**20)  # one block first, so both runs count only reallocation
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    np.ones(8 * 2**20)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _reallocation_faults(allocator: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _REALLOCATE, allocator], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


@glibc
def test_retained_memory_is_reused_without_page_faults():
    default, retain = _reallocation_faults("default"), _reallocation_faults("retain")
    huge_pages_per_block = 64 * 2**20 // 2**21  # the fewest faults a fresh block can take
    assert default >= 20 * huge_pages_per_block  # every round faults its block in again
    assert retain < default / 20  # the heap's pages are reused


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "retain"),
        ({ALLOCATOR_VARIABLE: "default"}, "default"),
        ({ALLOCATOR_VARIABLE: "retain"}, "retain"),
        ({"MALLOC_MMAP_THRESHOLD_": "131072"}, "default"),
        ({"MALLOC_TRIM_THRESHOLD_": "0"}, "default"),
        ({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=65536"}, "default"),
        ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, "retain"),  # not a threshold
        ({ALLOCATOR_VARIABLE: "retain", "MALLOC_TRIM_THRESHOLD_": "0"}, "retain"),
    ],
)
def test_the_environment_chooses_the_allocator(environ, expected):
    assert allocator_from_environment(environ) == expected


def test_an_unknown_allocator_is_one_clear_error():
    with pytest.raises(ConfigError, match=f"environment variable {ALLOCATOR_VARIABLE} must be"):
        allocator_from_environment({ALLOCATOR_VARIABLE: "jemalloc"})
    with pytest.raises(ConfigError, match="allocator must be one of"):
        tune_allocator("jemalloc")
    assert check_allocator("default", "x") == "default"


@pytest.mark.parametrize(("command", "tuned"), [("eval", True), ("sample", True), ("train", False)])
def test_batch_inference_commands_tune_their_process_and_train_does_not(
    command, tuned, tmp_path, monkeypatch, capsys
):
    calls: list[str] = []
    monkeypatch.setattr(cli, "tune_allocator", calls.append)
    monkeypatch.delenv(ALLOCATOR_VARIABLE, raising=False)
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    missing = str(tmp_path / "missing")
    arguments = {"train": ["--config", missing], "eval": [missing], "sample": [missing]}
    assert cli.main([command, *arguments[command]]) == 2  # fails fast, after the tuning
    assert missing in capsys.readouterr().err
    assert calls == (["retain"] if tuned else [])


def test_a_bad_allocator_variable_stops_a_command_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ALLOCATOR_VARIABLE, "jemalloc")
    assert cli.main(["eval", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("glowflow eval: error: environment variable GLOWFLOW_ALLOCATOR")
    assert "\n" not in err

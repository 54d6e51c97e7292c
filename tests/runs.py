"""Shared settings of the tests that train tiny digits runs through the CLI."""

# A run of two steps with a tiny Glow: seconds on a CPU, enough for every command to work.
TINY = [
    "--max-steps",
    "2",
    "--hidden-channels",
    "8",
    "--num-steps-per-block",
    "2",
    "--init-images",
    "64",
    "--eval-every",
    "2",
    "--final-eval-draws",
    "1",
    "--warmup-steps",
    "1",
    "--lr-schedule",
    "constant",
    "--no-progress",
    "--device",
    "cpu",
]

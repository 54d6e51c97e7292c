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


# The smallest Glow the training tests run: two levels of one step, width 8.
TINY_TRAINING = [
    "--num-glow-blocks", "2", "--num-steps-per-block", "1", "--hidden-channels", "8",
    "--batch-size", "16", "--init-images", "32", "--eval-batch-size", "300",
    "--final-eval-draws", "1", "--sample-count", "4", "--no-progress", "--device", "cpu",
]  # fmt: skip

#!/usr/bin/env bash
# Regenerates the README pictures of docs/figures from models trained on digits on this machine
# (2 CPU cores: about 1.5 minutes per model and 10-20 for the ablation). Run from the repository root;
# on a busy machine OMP_NUM_THREADS=1 per process avoids thread oversubscription.
set -euo pipefail
RUNS=${RUNS:-runs}
FIG=docs/figures

# 1. Models: the digits preset, unconditional and class-conditional.
glowflow train --preset digits --run-dir "$RUNS/digits" --no-progress
glowflow train --preset digits --conditional --class-loss-weight 0.01 \
    --name digits-cond --run-dir "$RUNS/digits-cond" --no-progress

# 2. Temperature: one grid per temperature from the same latents.
glowflow sample "$RUNS/digits" --temperature 0 0.5 0.7 1.0 -n 64 --out "$FIG/temperature.png"

# 3. Interpolation between two test digits (test images 16, a 0, and 3, a 6), endpoints exact.
glowflow interpolate "$RUNS/digits" --a 16 --b 3 --steps 10 --out "$FIG/interpolation.png"

# 4. Manipulation: test eights moved along z(threes) - z(eights); the direction is saved in
#    RUN_DIR/experiments/direction_3_vs_8.safetensors for reuse (--direction FILE).
glowflow manipulate "$RUNS/digits" --attribute 3 --negative 8 --strengths -0.5 0 0.5 1 1.5 \
    --out "$FIG/manipulation.png"

# 5. Class grid of the class-conditional model: one row per digit.
python - "$RUNS/digits-cond" "$FIG/class_grid.png" <<'PY'
import sys

import torch

from glowflow.experiments.class_grid import class_grid
from glowflow.experiments.files import save_grid
from glowflow.training.checkpoint import load_run

loaded = load_run(sys.argv[1])
grid = class_grid(loaded.flow, samples_per_class=10, temperature=0.7,
                  generator=torch.Generator().manual_seed(0))
save_grid(grid.flatten(0, 1), loaded.info.n_bins, sys.argv[2], nrow=10)
PY

# 6. Reconstruction check.
glowflow reconstruct "$RUNS/digits" -n 64 --out "$FIG/reconstruction.png"

# 7. The ablation of the paper's Figure 3 (equal budget: 400 steps each, seeds 0, 1, 2).
glowflow ablate --preset digits --max-steps 400 --eval-every 40 --seeds 0 1 2 \
    --set num_steps_per_block=4 --set hidden_channels=64 --set warmup_steps=40 \
    --set final_eval_draws=4 --set log_every=40 --out "$RUNS/ablation-digits"
cp "$RUNS/ablation-digits/ablation.md" "$RUNS/ablation-digits/ablation.csv" "$FIG/"
cp "$RUNS/ablation-digits/ablation.png" "$FIG/ablation.png"

# 8. 8x8 digits are tiny: enlarge the pictures 4x (nearest neighbour) for display.
python - "$FIG"/temperature_t*.png "$FIG"/{interpolation,manipulation,class_grid,reconstruction}.png <<'PY'
import sys

from PIL import Image

for path in sys.argv[1:]:
    with Image.open(path) as image:
        image.resize((image.width * 4, image.height * 4), Image.NEAREST).save(path)
PY

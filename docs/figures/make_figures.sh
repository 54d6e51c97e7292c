#!/usr/bin/env bash
# Regenerates the README pictures of docs/figures from models trained on digits on this machine
# (2 CPU cores: about 1.5 minutes per model and 10-20 for the ablation). Run from the repository root;
# on a busy machine OMP_NUM_THREADS=1 per process avoids thread oversubscription. The commands
# write the pictures as they appear: enlarged (nearest neighbour) and labelled.
set -euo pipefail
RUNS=${RUNS:-runs}
FIG=docs/figures

# 1. Models: the digits preset's paper recipe (the figures were made with it), unconditional
# and class-conditional.
glowflow train --preset digits --recipe paper --run-dir "$RUNS/digits" --no-progress
glowflow train --preset digits --recipe paper --conditional --class-loss-weight 0.01 \
    --name digits-cond --run-dir "$RUNS/digits-cond" --no-progress

# 2. Temperature: one grid per temperature from the same latents.
glowflow sample "$RUNS/digits" --temperature 0 0.5 0.7 1.0 -n 64 --out "$FIG/temperature.png"

# 3. Interpolation between two test digits (test images 16, a 0, and 3, a 6), endpoints exact.
glowflow interpolate "$RUNS/digits" --a 16 --b 3 --steps 10 --out "$FIG/interpolation.png"

# 4. Manipulation: test eights moved along z(threes) - z(eights); the direction is saved in
#    RUN_DIR/experiments/direction_3_vs_8.safetensors for reuse (--direction FILE).
glowflow manipulate "$RUNS/digits" --attribute 3 --negative 8 --strengths -0.5 0 0.5 1 1.5 \
    --out "$FIG/manipulation.png"

# 5. Class grid of the class-conditional model: one labelled row per digit.
glowflow sample "$RUNS/digits-cond" --class-grid -n 10 --temperature 0.7 --out "$FIG/class_grid.png"

# 6. Reconstruction check.
glowflow reconstruct "$RUNS/digits" -n 64 --out "$FIG/reconstruction.png"

# 7. The ablation of the paper's Figure 3 (equal budget: 400 steps each, seeds 0, 1, 2).
glowflow ablate --preset digits --max-steps 400 --eval-every 40 --seeds 0 1 2 \
    --set num_steps_per_block=4 --set hidden_channels=64 --set warmup_steps=40 \
    --set final_eval_draws=4 --set log_every=40 --out "$RUNS/ablation-digits"
cp "$RUNS/ablation-digits/ablation.md" "$RUNS/ablation-digits/ablation.csv" "$FIG/"
cp "$RUNS/ablation-digits/ablation.png" "$FIG/ablation.png"

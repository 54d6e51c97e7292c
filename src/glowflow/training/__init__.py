"""Training, checkpoints and evaluation behind ``glowflow train``, ``eval`` and ``sample``.

Entry points for other code: :func:`glowflow.training.trainer.train` (a whole run from a
:class:`~glowflow.training.config.TrainConfig`) and
:func:`glowflow.training.checkpoint.load_run` (a trained flow from a run folder or checkpoint).
Submodules are imported on use, so ``import glowflow.training`` stays light.
"""

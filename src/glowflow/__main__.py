"""``python -m glowflow``: the command line.

A data-parallel worker (started by ``torchrun`` or ``glowflow train --nproc-per-node``) leaves
with ``os._exit`` once its output is flushed: its process group is already destroyed, and the
interpreter's own finalization then sometimes aborts in gloo's threads (``terminate called
without an active exception``, exit status -6), failing a finished run.
"""

import os
import sys

from .cli import main
from .training.launch import is_worker

status = main()
if is_worker():
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
sys.exit(status)

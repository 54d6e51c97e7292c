"""``python benchmarks/bench.py [options]``: the same as ``glowflow bench [options]``.

Runs from a source checkout without installing: ``src/`` is put on the path when glowflow is
not importable. See ``glowflow bench --help`` and the package ``glowflow.bench``
(``src/glowflow/bench/``).
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import glowflow  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from glowflow.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))

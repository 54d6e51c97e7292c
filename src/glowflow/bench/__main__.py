"""``python -m glowflow.bench SPEC_JSON``: one glowflow measuring process
(:func:`glowflow.bench.process.measure`), its result printed as one JSON line."""

from __future__ import annotations

import json
import sys

from .process import measure

if __name__ == "__main__":
    print(json.dumps(measure(json.loads(sys.argv[1]))))

"""The peer runners: one module per peer implementation timed beside glowflow.

``python -m glowflow.bench.runners.NAME PEER_PATH SPEC_JSON`` builds peer ``NAME``'s model from
its checkout at ``PEER_PATH`` (imported at run time: no peer code is part of glowflow) for the
configuration in ``SPEC_JSON`` and prints the measurement as one JSON line
(:mod:`glowflow.bench.peers` starts it; :mod:`.common` is what the runners share).
"""

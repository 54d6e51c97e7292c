"""glowflow's own error types: the mistakes a user can fix.

Every error that a user's input causes (a bad option, a missing or damaged file, a model that
does not fit its weights) is a :class:`GlowflowError`, raised with one line that names the
problem and the file. The command line prints those as one line with exit status 2; anything
else is a bug and keeps its traceback. Each subclass is also the built-in exception a Python
caller would expect, so ``except ValueError`` keeps working for a bad option.

>>> issubclass(ConfigError, ValueError) and issubclass(ConfigError, GlowflowError)
True
"""

from __future__ import annotations


class GlowflowError(Exception):
    """A mistake the user can fix; its message is one line naming the problem and the file."""


class ConfigError(GlowflowError, ValueError):
    """A bad setting or input: an unknown option, a value of the wrong type or out of range, a
    combination that cannot work, a tensor of the wrong shape or dtype for the model."""


class ModelFileError(GlowflowError, RuntimeError):
    """A file or folder that cannot be used: unreadable, truncated, corrupt, foreign, not
    fitting the model it describes, or not writable (a full disk, a run folder another process
    holds)."""


class MissingFileError(GlowflowError, FileNotFoundError):
    """A file or folder that should exist and does not."""


class MissingExtraError(GlowflowError, ModuleNotFoundError):
    """An optional dependency the feature needs is not installed; the message names the extra
    that installs it (``pip install 'glowflow[tfp]'``)."""

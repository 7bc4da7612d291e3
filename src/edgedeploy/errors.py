"""Errors in three kinds, one exit code each (the contract every command follows).

======  =====================================================================
exit    meaning
======  =====================================================================
0       done: the command did its job and every target it checked was met
1       ran, but the verdict is negative (:class:`VerdictError`): a target not
        met, problems found, no configuration within budget, every row failed
2       bad input or usage (:class:`UserError`): fix the input and run again
3       internal failure (:class:`InternalError` or any other exception): a
        bug or an engine crash; please report it with the log
======  =====================================================================

The library raises these naming *parameters* (``max_accuracy_drop``), never CLI flags; the
CLI maps parameter names to flags when it prints the one line.
"""

from __future__ import annotations

import difflib

EXIT_OK = 0
EXIT_NEGATIVE = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


class EdgeDeployError(Exception):
    """Base of every error edgedeploy raises on purpose; ``exit_code`` is the contract's."""

    exit_code = EXIT_INTERNAL


class UserError(EdgeDeployError):
    """A mistake the user can fix: bad input, a missing package, an unknown name.

    The message says what was given, what was expected and what to do; the CLI prints it
    on one line and exits 2.
    """

    exit_code = EXIT_USAGE


class VerdictError(EdgeDeployError):
    """The work ran, and its verdict is negative (targets not met, nothing within budget).

    ``figures`` carries the measurements that led to the verdict, for ``--json``.
    """

    exit_code = EXIT_NEGATIVE

    def __init__(self, message: str, *, figures: dict | None = None):
        super().__init__(message)
        self.figures = dict(figures or {})


class InternalError(EdgeDeployError):
    """Something failed that is not the user's doing: an engine crashed, a bug. Exit 3."""

    exit_code = EXIT_INTERNAL


class EngineMissing(UserError):
    """An engine's Python package is not installed."""


class ConversionError(UserError):
    """A converter (paddle2onnx, torch.onnx) could not convert the model."""


def did_you_mean(given: str, choices) -> str:
    """' (did you mean X?)' for the closest choice, or '' when none is close."""
    close = difflib.get_close_matches(str(given), [str(c) for c in choices], n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""

"""Errors of mlc: one base class that carries the process exit code.

The CLI turns any `MlcError` into one line on stderr and its `exit_code`; anything else is a bug
in mlc and is reported as an internal error (with the traceback under `-v`).
Exit codes are a contract (DESIGN.md): 0 success, 1 numeric check failed, 2 bad usage or bad
input model, 3 requested target unavailable on this machine.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`; did you mean X?` for the closest known names (empty when none is close)."""
    close = difflib.get_close_matches(word, list(dict.fromkeys(choices)), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(close)}?" if close else ""


class MlcError(Exception):
    """Base of every error mlc raises on purpose."""

    exit_code: int = 2


class BadInputError(MlcError):
    """The model file, or an argument, cannot be used (missing, malformed, unsafe)."""

    exit_code = 2


class VerificationError(MlcError):
    """The IR breaks a structural invariant (SSA, order, scoping, types).

    Raised on import for a malformed model (exit 2); raised after a pass it means the pass is wrong.
    """

    exit_code = 2


class NumericMismatchError(MlcError):
    """A numeric check against the reference failed."""

    exit_code = 1


class TargetUnavailableError(MlcError):
    """The requested target cannot be used on this machine (library or device missing)."""

    exit_code = 3


class InternalError(MlcError):
    """A fault of mlc itself (not of the input): exit 70, naming where it happened."""

    exit_code = 70


class TextParseError(MlcError):
    """The textual IR could not be parsed; the message gives line and column."""

    exit_code = 2

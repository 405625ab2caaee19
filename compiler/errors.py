"""Errors of mlc: one base class that carries the process exit code.

The CLI turns any `MlcError` into one line on stderr and its `exit_code`; anything else is a bug
in mlc and is reported as an internal error (with the traceback under `-v`).
Exit codes are a contract (DESIGN.md): 0 success, 1 numeric check failed, 2 bad usage or bad
input model, 3 requested target unavailable on this machine.
"""

from __future__ import annotations


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


class TextParseError(MlcError):
    """The textual IR could not be parsed; the message gives line and column."""

    exit_code = 2

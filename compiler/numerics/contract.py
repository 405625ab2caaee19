"""What a rewrite promises about the numbers: the contract a check is judged by.

It lives with the numeric checks that interpret it (`mlc.numerics.compare` picks tolerances by
it), below the pass API that declares it on every pass (`mlc.pass_api` re-exports it), so that the
numeric layer never imports the pass layer above it.
"""

from __future__ import annotations

import enum


class Numerics(enum.Enum):
    """What a pass promises about the numbers."""

    EXACT = "exact"  # no change of values (dead code, renaming)
    TOLERANCE = "tolerance"  # rounding may differ (Conv+BatchNorm folding, reassociation)
    LOSSY = "lossy"  # changes values on purpose (quantization, pruning): judged on data, not equivalence


__all__ = ["Numerics"]

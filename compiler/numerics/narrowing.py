"""What rounding exact (float64) results to a narrower float type loses.

A pass that folds constants (`W' = W * s` when BatchNormalization is folded into a Conv) computes
the product in float64 and rounds it once to the weight's type. In float16 that rounding can
lose the value in two ways that running the unfused graph would not:

- overflow: |W * s| > 65504 rounds to Inf, where the unfused graph multiplies a finite
  convolution result by s and stays finite (the activations are small even when W * s is not);
- underflow: a channel whose folded weights all lie below the smallest normal (6.1e-05) keeps
  only a few significant bits (subnormal) or none (zero), where W and s alone are normal.

A single tiny element of an otherwise normal channel loses nothing that matters: its rounding
error (at most half the smallest subnormal) is below half an ulp of the channel's largest weight
as long as that one is normal. So underflow is judged per channel: a channel is lost when its
largest |folded value| is nonzero but below the type's smallest normal. Together: the folded
constants are kept exactly when every element's rounding error stays within one rounding of the
channel's largest value, which is what folding promises (`tolerance`).

`narrowing_problem` says why a fold must not be made (None when it may); `quiet_cast` casts
without numpy's `overflow encountered in cast` warning and counts what overflowed instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import ml_dtypes
import numpy as np


def float_limits(dtype: np.dtype | type) -> tuple[float, float]:
    """(largest finite, smallest normal) of a float type, the ml_dtypes ones included."""
    info = ml_dtypes.finfo(np.dtype(dtype))
    return float(info.max), float(info.smallest_normal)


def type_name(dtype: np.dtype | type) -> str:
    """`float16`, `bfloat16`, `float32`: how messages name a type."""
    return np.dtype(dtype).name


def quiet_cast(array: np.ndarray, dtype: np.dtype | type) -> tuple[np.ndarray, int]:
    """`array` cast to `dtype` without numpy's floating-point warnings, and how many finite
    elements became non-finite (overflowed) on the way."""
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        cast = np.asarray(array).astype(dtype)
    source = np.asarray(array)
    if source.dtype.kind not in "fc" or np.dtype(dtype).kind not in "fcV":
        return cast, 0
    lost = np.isfinite(source) & ~np.isfinite(cast.astype(np.float64))
    return cast, int(lost.sum())


def narrowing_problem(exact: np.ndarray, dtype: np.dtype | type, *, channel_axes: Sequence[int] = (0,),
                      what: str = "folded weights", underflow: bool = True) -> str | None:
    """Why rounding `exact` (float64) to `dtype` loses values (module docstring), or None.

    `channel_axes` are the axes that index the per-channel factor (a Conv weight's axis 0, a Gemm
    weight's column axis): underflow is judged over each slice they select. An empty tuple judges
    the array as one whole. `underflow=False` judges overflow only: a folded bias is added, not
    multiplied, so its rounding in the subnormal range (at most half the smallest subnormal)
    stays below the rounding of any normal value it is added to."""
    values = np.asarray(exact, dtype=np.float64)
    if values.size == 0:
        return None
    name = type_name(dtype)
    if not np.all(np.isfinite(values)):
        bad = int((~np.isfinite(values)).sum())
        return f"{bad} {what} are NaN or Inf already in float64"
    largest, smallest_normal = float_limits(dtype)
    magnitude = np.abs(values)
    rounded, overflowed = quiet_cast(values, dtype)
    if overflowed:
        return (f"{overflowed} of {values.size} {what} overflow {name} (largest |value| "
                f"{float(magnitude.max()):.3g} > {largest:.6g}): they would not be finite")
    del rounded
    if not underflow:
        return None
    axes = tuple(a % values.ndim for a in channel_axes) if values.ndim else ()
    if not axes:
        peak = float(magnitude.max())
        if 0 < peak < smallest_normal:
            return (f"the {what} underflow {name} (largest |value| {peak:.3g} < its smallest normal "
                    f"{smallest_normal:.3g}): they would round to subnormals or zero")
        return None
    per_channel = magnitude.max(axis=tuple(i for i in range(values.ndim) if i not in axes))
    lost = (per_channel > 0) & (per_channel < smallest_normal)
    if np.any(lost):
        return (f"the {what} of {int(np.count_nonzero(lost))} of {per_channel.size} channels underflow {name} "
                f"(largest |value| {float(per_channel[lost].max()):.3g} < its smallest normal "
                f"{smallest_normal:.3g}): they would round to subnormals or zero")
    return None


__all__ = ["float_limits", "narrowing_problem", "quiet_cast", "type_name"]

"""The affine tail of a decomposed layer norm: `Mul(n, gamma)` and `Add(., beta)` (`fuse-layernorm`).

LayerNormalization wants gamma and beta shaped exactly as the normalized axes, so a constant that
is [1, 1, H] is reshaped and a broadcast [1] is expanded (which needs those axes static); one that
varies along an axis that is not normalized is no layer norm's. Both parts are optional; a
multiplication by a non-constant is refused (whether it is gamma cannot be told), an Add of a
non-constant (a residual) ends the layer norm before it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlc.ir.core import Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import Dim
from mlc.passes._chain_match import output_of
from mlc.passes._match_basics import const_array, dtype_of
from mlc.passes._transformer_match import other_input, sole_reader


@dataclass
class Affine:
    """The Mul/Add nodes found after the normalized value, the pattern's output, and gamma/beta
    shaped as the normalized axes (None: absent), with the constants themselves where already so
    shaped (None: a reshaped copy is needed)."""

    nodes: list[Node]
    out: Value
    params: list[np.ndarray | None]
    values: list[Value | None]


def affine_param(array: np.ndarray, k: int, norm_dims: tuple[Dim, ...], rank: int | None,
                 what: str) -> np.ndarray | str:
    """gamma/beta shaped as the normalized axes, or why it cannot be: it may only vary along them."""
    if rank is not None and array.ndim > rank:
        return f"{what} has rank {array.ndim}, more than the input's {rank} (the product broadcasts up)"
    if array.ndim > k and any(d != 1 for d in array.shape[:array.ndim - k]):
        return f"{what} of shape {list(array.shape)} varies along an axis that is not normalized"
    if rank is None and array.ndim > k:
        return f"{what} has more axes than the normalized ones and the input's rank is unknown"
    tail = array.reshape(array.shape[max(array.ndim - k, 0):])
    tail = tail.reshape((1,) * (k - tail.ndim) + tail.shape)
    target: list[int] = []
    have: int
    for have, dim in zip(tail.shape, norm_dims, strict=True):
        if isinstance(dim, int):
            if have not in (1, dim):
                return f"{what} of shape {list(array.shape)} does not match the normalized axes {list(norm_dims)}"
            target.append(dim)
        elif have == 1:
            return f"{what} broadcasts along a normalized axis of unknown size"
        else:
            target.append(have)
    return np.ascontiguousarray(np.broadcast_to(tail, tuple(target)))


def match_affine(n: Value, k: int, norm_dims: tuple[Dim, ...], rank: int | None, dtype: DType) -> Affine | str:
    """The optional Mul(gamma) and Add(beta) after the normalized value `n`, or why the pattern
    cannot be fused."""
    found = Affine([], n, [None, None], [None, None])
    for slot, op, what in ((0, "Mul", "gamma"), (1, "Add", "beta")):
        reader = sole_reader(found.out, op)
        operand = other_input(reader, found.out) if reader is not None else None
        if reader is None or operand is None or operand is found.out:
            continue
        array = const_array(operand)
        if array is None:
            if op == "Mul":
                return f"the normalized value is multiplied by the non-constant %{operand.name} (gamma must be " \
                       "constant)"
            break  # an Add of a non-constant (a residual) is not a beta: the layer norm ends before it
        if dtype_of(operand) != dtype:
            return f"{what} is not of the input's element type"
        shaped = affine_param(array, k, norm_dims, rank, what)
        if isinstance(shaped, str):
            return shaped
        found.params[slot] = shaped
        found.values[slot] = operand if array.shape == shaped.shape else None
        found.nodes.append(reader)
        found.out = output_of(reader)
    return found


__all__ = ["Affine", "affine_param", "match_affine"]

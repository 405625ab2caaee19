"""The bounds a model must stay within before mlc builds, folds or runs anything of it.

A model file is untrusted input: a few hundred bytes can declare a tensor of terabytes, nest
functions deeply enough to overflow a C++ stack, or carry attribute values that make a runtime
divide by zero. These limits are checked on the protobuf (`mlc.onnx_io.validate`) and on the
imported graph's static shapes (`estimate_sizes`), and a model beyond them is refused with one
line naming the node, tensor or attribute.

`MAX_TENSOR_BYTES` bounds every tensor mlc or a runtime would have to *make*: a graph input it
generates for the checks, and each node output whose shape is known statically. Weights stored
in the file (initializers, Constant tensors, external data) exist already and are not counted.
512 MiB holds the largest tensor of the onnx wheel's light models (light_vgg19's 411 MB fc6
weight, made at run time by ConstantOfShape) while a bomb of a few hundred MB more is refused by
this estimate, before anything allocates it. A model that really makes larger tensors (a big
batch, a long sequence at a static shape) raises it with the environment variable
`MLC_MAX_TENSOR_BYTES` (bytes, or with a K/M/G/T suffix: `MLC_MAX_TENSOR_BYTES=8G`), which every
command and the Python API read.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable

from mlc.errors import BadInputError

MAX_TENSOR_BYTES = 512 << 20
MAX_FUNCTION_DEPTH = 100  # model-local functions calling each other (onnx's own inference stops at 100)
MAX_ELEMENTS = (1 << 62)  # element counts beyond this overflow int64 byte counts
MAX_BLOCKSIZE = 1 << 16  # DepthToSpace / SpaceToDepth: blocksize**2 must not overflow the runtime's int64
MAX_WINDOW = (1 << 31) - 1  # kernel_shape, strides, dilations, pads of convolutions and pools


TENSOR_LIMIT_VARIABLE = "MLC_MAX_TENSOR_BYTES"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def max_tensor_bytes() -> int:
    """`MAX_TENSOR_BYTES`, or what `MLC_MAX_TENSOR_BYTES` says (refused in one line when it is not
    a size)."""
    given = os.environ.get(TENSOR_LIMIT_VARIABLE, "").strip()
    if not given:
        return MAX_TENSOR_BYTES
    match = re.fullmatch(r"(\d+)\s*([KMGT]?)(?:i?B)?", given, re.IGNORECASE)
    if match is None or int(match.group(1)) == 0:
        raise BadInputError(f"{TENSOR_LIMIT_VARIABLE}={given!r}: expected a size in bytes such as 1073741824 or 8G")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


def element_count(dims: Iterable[int]) -> int:
    """The product of `dims` as a Python int (never wraps around)."""
    return math.prod(int(d) for d in dims)


def human(nbytes: int) -> str:
    """`4.0 TiB`, `800.0 MiB`: sizes in error messages."""
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if value < 1024 or unit == "EiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{nbytes} B"


__all__ = [
    "MAX_BLOCKSIZE",
    "MAX_ELEMENTS",
    "MAX_FUNCTION_DEPTH",
    "MAX_TENSOR_BYTES",
    "MAX_WINDOW",
    "TENSOR_LIMIT_VARIABLE",
    "element_count",
    "human",
    "max_tensor_bytes",
]

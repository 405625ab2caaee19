"""Differential fuzzing of mlc: random valid ONNX graphs compiled at -O3 and compared with onnxruntime.

`generate(seed)` builds a `Case` (a model and its feeds) from a numpy Generator, deterministic
per seed; `validate` proves it valid (onnx checker, strict shape inference, plain onnxruntime);
`check_case` compiles it for a target and judges the artifact's outputs against the reference;
`minimize` shrinks a failing case by delta debugging over its nodes. `benchmarks/fuzz.py` drives
them for a time budget; `tests/fuzz/` runs a fixed slice in CI.
"""

from mlc.fuzzing.case import Case
from mlc.fuzzing.generator import generate, validate
from mlc.fuzzing.minimize import minimize
from mlc.fuzzing.oracle import Verdict, check_case

__all__ = ["Case", "Verdict", "check_case", "generate", "minimize", "validate"]

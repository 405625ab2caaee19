"""How mlc treats subnormal (denormal) numbers: as IEEE 754 says, kept, never flushed to zero.

Subnormals are the nonzero values below a type's smallest normal (float32 1.2e-38, float16
6.1e-05). A CPU can flush them to zero, for results (FTZ) or for inputs (DAZ), through its
MXCSR register; GPUs do so in kernels built with fast math. Which engine flushes changes the
numbers only by amounts below the smallest normal, unless the model amplifies them afterwards
(a subnormal weight times a large activation, a normalization): then flushing is a big
difference. So mlc's policy has three parts:

1. Nothing mlc runs flushes. The reference onnxruntime session pins
   `session.set_denormal_as_zero` to "0" (`REFERENCE_SESSION_CONFIG`; also onnxruntime's
   default). With "1", onnxruntime 1.31 flushes on its intra-op pool threads only, not on the
   calling thread: with 2 threads, a MatMul over subnormal weights gave zeros in the half of the
   output the pool thread computed and the right values in the other half. TVM's llvm code uses
   LLVM's default `ieee` denormal mode and the thread's MXCSR, which nothing in mlc changes;
   float16 is widened to float32 on x86, where every float16 subnormal is a normal number.
   `flush_to_zero_active` tells whether something in the process (a library built with
   `-ffast-math` sets FTZ/DAZ when it loads) changed that for the calling thread.
2. The check tolerates only what flushing can explain: two values that both lie below the
   type's smallest normal compare equal (`mlc.numerics.compare`), and the note counts them. A
   flushed weight that moves a normal output is a mismatch like any other.
3. Passes do not create subnormals where there were none: a fold whose channel would underflow
   is refused (`mlc.numerics.narrowing`), and `mlc inspect` counts subnormal constants
   (`mlc.numerics.hazards`).
"""

from __future__ import annotations

import numpy as np

# onnxruntime session config entries of every session mlc opens for a reference run
REFERENCE_SESSION_CONFIG = {"session.set_denormal_as_zero": "0"}


def flush_to_zero_active() -> bool:
    """Whether float32 arithmetic on this thread flushes subnormal results (FTZ) or reads
    subnormal operands as zero (DAZ): both are MXCSR bits that a loaded library may have set."""
    smallest_normal = np.float32(np.finfo(np.float32).smallest_normal)
    subnormal = np.float32(np.finfo(np.float32).smallest_subnormal) * np.float32(4)
    ftz = smallest_normal * np.float32(0.5) == np.float32(0)
    daz = subnormal + np.float32(0) == np.float32(0)
    return bool(ftz or daz)


__all__ = ["REFERENCE_SESSION_CONFIG", "flush_to_zero_active"]

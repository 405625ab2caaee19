"""What the benchmark scripts say about the machine they ran on (their results name the CPU)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu() -> str:
    """`AMD EPYC, 2 cores visible, AVX-512 + VNNI`: the model name and the vector ISA that matters here."""
    name, flags = platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            if key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    isa = "AVX-512 + VNNI" if "avx512_vnni" in flags else "AVX-512" if "avx512f" in flags else \
        "AVX2" if "avx2" in flags else "no AVX2"
    return f"{name}, {os.cpu_count()} cores visible, {isa}"


def versions(root: Path) -> str:
    """`python 3.11.7, onnx 1.23.2, onnxruntime 1.31.1, tvm 0.27.0.post1, mlc <commit of root>`."""
    import subprocess

    import onnx
    import onnxruntime

    parts = [f"python {platform.python_version()}", f"onnx {onnx.__version__}",
             f"onnxruntime {onnxruntime.__version__}"]
    try:
        import tvm

        parts.append(f"tvm {tvm.__version__}")
    except ImportError:
        pass
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    return ", ".join([*parts, f"mlc {commit or '?'}"])

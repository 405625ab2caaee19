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

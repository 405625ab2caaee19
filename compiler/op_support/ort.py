"""onnxruntime's op support, read from the installed onnxruntime: its kernel registry
(`get_all_opkernel_def`: op, domain, provider, version range, type constraints) and its operator
schemas (`get_all_operator_schema`: every version of every op, with the type constraint each input
and output is bound to).

A node builds when a kernel of the target's providers covers the op version the model's opset
selects (the latest schema version at or below it) and, where the node's element types are known,
takes them. An op with no kernel but an ONNX function body is inlined by onnxruntime; a
model-local function is inlined too. `onnxruntime-cuda` runs on the CUDA provider with the CPU one
as fallback; a CPU build of onnxruntime (`pip install onnxruntime`) lists no CUDA kernels, so there
the verdict is "unknown" rather than guessed.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass, field

from mlc.ir.core import Node
from mlc.ir.dtypes import DType
from mlc.op_support.table import OpRange, Status, SupportTable, Verdict, tensor_dtype

CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"
PROVIDERS = {"onnxruntime": (CPU,), "onnxruntime-cuda": (CUDA, CPU)}
_OPEN_END = 2**31 - 1  # the registry's "and later"

# The last ai.onnx opset onnxruntime loads a model of: above it, session creation fails with
# "ONNX Runtime only *guarantees* support for models stamped with official released onnx opset
# versions ... Current official support for domain ai.onnx is till opset 26" (measured with
# onnxruntime 1.31.1: opset 26 loads, 27 is refused). The schemas alone reach 27 (in development),
# so for another onnxruntime version the bound is the schemas' latest version.
_RELEASED_AI_ONNX = {"1.31": 26}

_TYPE_NAMES = {f"tensor({dtype.name.lower()})": dtype for dtype in DType if dtype != DType.UNDEFINED}


def _short(type_str: str) -> str:
    dtype = _TYPE_NAMES.get(type_str)
    return dtype.short_name if dtype is not None else type_str


@dataclass(frozen=True)
class Kernel:
    since: int
    until: int | None
    provider: str
    types: dict[str, frozenset[str]]  # type constraint -> "tensor(float)", ...

    def covers(self, version: int) -> bool:
        return self.since <= version and (self.until is None or version <= self.until)


@dataclass(frozen=True)
class Schema:
    since: int
    inputs: tuple[tuple[str, bool], ...]  # (type constraint or type, variadic)
    outputs: tuple[tuple[str, bool], ...]


@dataclass
class OrtTable(SupportTable):
    providers: tuple[str, ...] = (CPU,)
    kernels: dict[tuple[str, str], list[Kernel]] = field(default_factory=dict)
    schemas: dict[tuple[str, str], list[Schema]] = field(default_factory=dict)
    gpu_unknown: bool = False  # onnxruntime-cuda on a CPU build: CUDA kernels are not listed here

    def check_op(self, domain: str, op_type: str, opset: int, node: Node | None) -> Verdict:
        key = (domain, op_type)
        if key == ("", "Constant"):  # no kernel: onnxruntime turns Constant nodes into initializers
            return Verdict.ok("becomes an initializer when onnxruntime loads the model")
        versions = self.schemas.get(key)
        if not versions:
            if not any(d == domain for d, _ in self.schemas):
                return Verdict.no(f"onnxruntime knows no domain {domain}")
            return Verdict.no("no such op in onnxruntime's schemas")
        fitting = [s for s in versions if s.since <= opset]
        if not fitting:
            return Verdict.no(f"opset {opset} below {versions[0].since}, the op's first version")
        schema = fitting[-1]
        kernels = [k for k in self.kernels.get(key, ()) if k.covers(schema.since)]
        if self.gpu_unknown:
            fallback = "a CPU kernel exists (the fallback)" if kernels else "no CPU kernel either"
            return Verdict(Status.UNKNOWN, f"this CPU build of onnxruntime lists no CUDA kernels (needs "
                                           f"onnxruntime-gpu); {fallback}")
        if not kernels:
            if _has_function_body(op_type, domain, opset):
                return Verdict(Status.CONDITIONAL, "no kernel: onnxruntime inlines its ONNX function body "
                                                   "(whose ops need kernels in turn)")
            others = sorted({(k.since, k.until) for k in self.kernels.get(key, ())})
            listed = ", ".join(OpRange(a, b).text() for a, b in others)
            return Verdict.no(f"no {self.provider_text()} kernel for version {schema.since}"
                              + (f" (kernels for versions {listed})" if listed else ""))
        matched: list[Kernel] = kernels
        if node is not None:
            bound = _bindings(schema, node)
            matched, why = _type_match(kernels, bound)
            f16 = "tensor(float16)"
            if not matched and f16 in bound.values() and self.providers[0] != CUDA:
                widened = {k: "tensor(float)" if t == f16 else t for k, t in bound.items()}
                if _type_match(kernels, widened)[0]:  # onnxruntime's InsertCastTransformer, CPU only
                    return Verdict(Status.CONDITIONAL, "no float16 kernel: onnxruntime runs it in float32 between "
                                                       "casts it inserts (float16 rounding and overflow not "
                                                       "reproduced)")
            if not matched:
                return Verdict.no(why)
        if self.providers[0] == CUDA and not any(k.provider == CUDA for k in matched):
            return Verdict.ok("runs on the CPU (no CUDA kernel)")
        return Verdict.ok()

    def provider_text(self) -> str:
        return "/".join(p.removesuffix("ExecutionProvider") for p in self.providers)


def _has_function_body(op_type: str, domain: str, opset: int) -> bool:
    from mlc.onnx_io.functions import has_function_body

    try:
        return has_function_body(op_type, domain, opset)
    except Exception:  # noqa: BLE001 - an op onnx's schemas do not know has no body
        return False


def _bindings(schema: Schema, node: Node) -> dict[str, str]:
    """Type constraint -> the node's element type there ("tensor(float)"), where known."""
    found: dict[str, str] = {}
    for params, values in ((schema.inputs, node.inputs), (schema.outputs, node.outputs)):
        for i, value in enumerate(values):
            if value is None or not params:
                continue
            if i >= len(params) and not params[-1][1]:
                continue
            dtype = tensor_dtype(value)
            if dtype is not None:
                found.setdefault(params[min(i, len(params) - 1)][0], f"tensor({dtype.name.lower()})")
    return found


def _type_match(kernels: list[Kernel], bound: dict[str, str]) -> tuple[list[Kernel], str]:
    """The kernels that take the node's element types, or none and why."""
    fits = [k for k in kernels if all(t in k.types[name] for name, t in bound.items() if name in k.types)]
    if fits:
        return fits, ""
    for name, t in bound.items():
        allowed = set().union(*(k.types.get(name, frozenset()) for k in kernels))
        if allowed and t not in allowed:
            takes = ", ".join(sorted(_short(a) for a in allowed))
            return [], f"no kernel for {name}={_short(t)} (kernels take {takes})"
    together = ", ".join(f"{n}={_short(t)}" for n, t in bound.items())
    return [], f"no kernel for {together} together"


@functools.cache
def _registry() -> tuple[dict[tuple[str, str], list[Kernel]], dict[tuple[str, str], list[Schema]]]:
    from onnxruntime.capi import _pybind_state as ort_c

    kernels: dict[tuple[str, str], list[Kernel]] = defaultdict(list)
    for d in ort_c.get_all_opkernel_def():
        low, high = d.version_range
        kernels[(d.domain, d.op_name)].append(Kernel(
            low, None if high >= _OPEN_END else high, d.provider,
            {name: frozenset(types) for name, types in d.type_constraints.items()}))
    schemas: dict[tuple[str, str], list[Schema]] = defaultdict(list)
    for s in ort_c.get_all_operator_schema():
        schemas[(s.domain, s.name)].append(Schema(
            s.since_version,
            tuple((p.typeStr, str(p.option).endswith("Variadic")) for p in s.inputs),
            tuple((p.typeStr, str(p.option).endswith("Variadic")) for p in s.outputs)))
    for versions in schemas.values():
        versions.sort(key=lambda s: s.since)
    return dict(kernels), dict(schemas)


def _ranges(kernels: list[Kernel]) -> tuple[OpRange, ...]:
    """The registry's version ranges of one op, each with the element types its kernels take."""
    merged: dict[tuple[int, int | None], dict[str, set[str]]] = {}
    for k in kernels:
        types = merged.setdefault((k.since, k.until), {})
        for name, allowed in k.types.items():
            types.setdefault(name, set()).update(allowed)
    return tuple(OpRange(since, until, "; ".join(f"{n}: {' '.join(sorted(_short(t) for t in ts))}"
                                                  for n, ts in sorted(types.items())))
                 for (since, until), types in sorted(merged.items(), key=lambda item: item[0][0]))


def ort_table(target: str) -> OrtTable:
    import onnxruntime

    providers = PROVIDERS[target]
    all_kernels, schemas = _registry()
    listed = {k.provider for ks in all_kernels.values() for k in ks}
    gpu_unknown = CUDA in providers and CUDA not in listed
    kernels = {key: [k for k in ks if k.provider in providers] for key, ks in all_kernels.items()}
    kernels = {key: ks for key, ks in kernels.items() if ks}
    version = onnxruntime.__version__
    latest: dict[str, int] = {}
    for (domain, _), versions in schemas.items():
        latest[domain] = max(latest.get(domain, 0), versions[-1].since)
    latest[""] = _RELEASED_AI_ONNX.get(".".join(version.split(".")[:2]), latest.get("", 1))
    shown = ["CPU; no CUDA kernels in this build"] if gpu_unknown else [p.removesuffix("ExecutionProvider")
                                                                         for p in providers]
    notes = ["an op without a kernel but with an ONNX function body is inlined (built from its body)"]
    if gpu_unknown:
        notes.append(f"this onnxruntime {version} is a CPU build: the CUDA provider's kernels are not listed "
                     "(pip install onnxruntime-gpu to check them); the table shows the CPU fallback's")
    return OrtTable(
        target=target,
        source=f"onnxruntime {version} kernel registry ({', '.join(shown)})",
        ops={key: _ranges(ks) for key, ks in kernels.items()},
        opsets={domain: (1, high) for domain, high in latest.items()},
        notes=notes, providers=providers, kernels=kernels, schemas=schemas, gpu_unknown=gpu_unknown)

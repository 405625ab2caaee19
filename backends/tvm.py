"""The Apache TVM backend: targets `llvm` (CPU) and `cuda` (NVIDIA GPU).

Lowering goes through TVM's Relax ONNX frontend on the graph our pipeline produced (exported to
ONNX in memory): it covers the most ops, and our own legalizations run before it. Ops the
frontend does not know are reported in one line before TVM is asked. The artifact is
`module.so`, the compiled library with its weights as constants, which TVM's runtime alone loads
(`tvm.runtime.load_module` + `relax.VirtualMachine`).

`llvm` compiles for the host CPU unless `mcpu` is given (cross-compiling; `mattr` adds or
removes CPU features); the artifact records the CPU features the code may use, and `mlc run`
refuses it on a CPU that lacks one. `cuda` compiles without a GPU (the wheel has CUDA codegen)
for `cuda_arch` (default sm_80); running it needs a GPU of at least that architecture.

`validate_options` checks these options against what LLVM knows (its CPU and feature names for
the host triple, its NVPTX architectures) before any work, because TVM itself only logs a bad
name on stderr and compiles for a generic CPU. What TVM and LLVM write to stderr natively goes
to the debug log instead (`native_stderr_to_log`).
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from mlc.backends.base import Availability, Backend, CompileResult, Runner
from mlc.backends.tvm_build import COUNTS_SUFFIX, build_in_child, build_library, native_stderr_to_log
from mlc.backends.tvm_rnn import RECURRENT_OPS
from mlc.backends.tvm_rnn import refusal as rnn_refusal
from mlc.errors import BadInputError, MlcError
from mlc.ir.core import Graph
from mlc.ir.dtypes import DType
from mlc.ir.types import OptionalType, SequenceType, TensorType
from mlc.onnx_io.exporter import export_onnx, save_onnx
from mlc.specialize import reads_input_values

LLVM, CUDA = "llvm", "cuda"
DEFAULT_CUDA_ARCH = "sm_80"
# The oldest architecture accepted: the sizes `compile` gives TVM hold for every GPU since sm_50.
MIN_CUDA_ARCH = 50
# The plain sm_XY architectures of LLVM 22's NVPTX back end (the wheel's LLVM), used only when
# that back end is missing from the TVM build; otherwise the list is taken from LLVM.
KNOWN_CUDA_ARCHES = ("sm_50", "sm_52", "sm_53", "sm_60", "sm_61", "sm_62", "sm_70", "sm_72", "sm_75", "sm_80",
                     "sm_86", "sm_87", "sm_88", "sm_89", "sm_90", "sm_100", "sm_101", "sm_103", "sm_110",
                     "sm_120", "sm_121")
# Backend option -> (its command-line flag, the target it is for).
OPTIONS = {"mcpu": ("--mcpu", LLVM), "mattr": ("--mattr", LLVM), "cuda_arch": ("--cuda-arch", CUDA),
           "schedules": ("--tvm-schedules", LLVM), "tuning_db": ("--tuning-db", None)}


def _tvm() -> Any:
    import tvm

    return tvm


def host_cpu() -> str:
    from tvm.target import codegen

    return str(codegen.llvm_get_system_cpu())


# TVM 0.27's LLVM code for AVX-512 computed the official Tile case wrongly (garbage with mcpu
# znver4, skylake-avx512, icelake-server, x86-64-v4; exact without AVX-512): legalize-tvm rewrites
# Tile into Reshape/Expand/Reshape, so AVX-512 stays available. Without AVX-512 (mcpu x86-64-v3,
# or "-avx512f") TVM's code for the VM's shape functions changes from run to run (registers
# allocated in another order: measured 3 different module.so in 5 compiles), so turning it off
# by default would cost byte-identical artifacts.


def cpu_features(mcpu: str, mattr: tuple[str, ...] = ()) -> list[str]:
    """LLVM's feature names enabled for `mcpu` with `mattr` (what code compiled for it may use)."""
    tvm = _tvm()
    from tvm.target import codegen

    with native_stderr_to_log("LLVM"):
        target = tvm.target.Target({"kind": "llvm", "mcpu": mcpu, **({"mattr": list(mattr)} if mattr else {})})
        features = codegen.llvm_get_cpu_features(target)
    return sorted(str(f) for f in features)


# --- checking the backend options ---------------------------------------------------------


@functools.cache
def llvm_triple() -> str:
    """The target triple `llvm` compiles for (no `mtriple` is given: LLVM's default)."""
    from tvm.target import codegen

    with native_stderr_to_log("LLVM"):
        return str(codegen.llvm_get_system_triple())


@functools.cache
def llvm_cpus() -> frozenset[str]:
    """The CPU names LLVM knows for `llvm_triple()` (what `--mcpu` accepts)."""
    tvm = _tvm()
    from tvm.target import codegen

    with native_stderr_to_log("LLVM"):
        return frozenset(str(c) for c in codegen.llvm_get_cpu_archlist(tvm.target.Target({"kind": "llvm"})))


@functools.cache
def llvm_feature_names() -> frozenset[str]:
    """Feature names for suggestions: those of any CPU LLVM knows (LLVM has no API for its whole
    feature table; a name outside this set is still accepted when LLVM recognizes it)."""
    names: set[str] = set()
    with native_stderr_to_log("LLVM"):  # one redirection for all (the inner ones do nothing)
        for cpu in llvm_cpus():
            names.update(cpu_features(cpu))
    return frozenset(names)


def recognized_features(mcpu: str, names: Iterable[str]) -> set[str]:
    """Those of `names` that LLVM recognizes as features of `mcpu`: each is switched on, and LLVM
    reports back those it could switch on (it ignores, with a line on stderr, a name it does not
    know)."""
    wanted = sorted(set(names))
    return set(cpu_features(mcpu, tuple(f"+{name}" for name in wanted))) & set(wanted)


@functools.cache
def cuda_arches() -> tuple[str, ...]:
    """The `sm_XY` architectures `--cuda-arch` accepts: the plain ones LLVM's NVPTX back end knows
    (TVM exposes its processor list), from sm_50 on; `KNOWN_CUDA_ARCHES` without that back end."""
    tvm = _tvm()
    from tvm.target import codegen

    with native_stderr_to_log("LLVM"):
        if "nvptx64" not in {str(t) for t in codegen.llvm_get_targets()}:
            return KNOWN_CUDA_ARCHES
        nvptx = tvm.target.Target({"kind": "llvm", "mtriple": "nvptx64-nvidia-cuda", "mcpu": DEFAULT_CUDA_ARCH})
        names = [str(c) for c in codegen.llvm_get_cpu_archlist(nvptx)]
    numbers = sorted({int(m.group(1)) for n in names if (m := re.fullmatch(r"sm_(\d+)", n))})
    return tuple(f"sm_{n}" for n in numbers if n >= MIN_CUDA_ARCH) or KNOWN_CUDA_ARCHES


def _show(value: Any) -> str:
    text = str(value)
    return text if text.isprintable() and text.strip() == text and text else repr(text)


def _nearest(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    return difflib.get_close_matches(word, sorted(set(choices)), n=n, cutoff=0.6)


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = _nearest(word, choices)
    return f"; did you mean {', '.join(close)}?" if close else ""


def mattr_items(value: Any) -> tuple[str, ...]:
    """`--mattr`'s items: a comma-separated string (or a list of strings), blanks dropped."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise BadInputError(f"--mattr {_show(value)}: give comma-separated +feature/-feature names, e.g. +avx2,-fma")
    return tuple(i.strip() for i in items if i.strip())


def check_mcpu(mcpu: Any) -> None:
    flag = "--mcpu"
    if not isinstance(mcpu, str):
        raise BadInputError(f"{flag} {_show(mcpu)}: a CPU name is a string, e.g. {flag} skylake-avx512")
    cpus = llvm_cpus()
    if mcpu in cpus:
        return
    # LLVM keeps old spellings (skylake_avx512 beside skylake-avx512): suggest the hyphenated one.
    shown = {c for c in cpus if not ("_" in c and c.replace("_", "-") in cpus)}
    hint = _did_you_mean(mcpu, shown) or f" for {llvm_triple()} (this machine's CPU is {host_cpu()})"
    raise BadInputError(f"{flag} {_show(mcpu)}: not a CPU LLVM knows{hint}")


def check_mattr(mattr: Any, mcpu: str) -> None:
    flag, items = "--mattr", mattr_items(mattr)
    if not items:
        raise BadInputError(f"{flag} {_show(mattr)}: no features given; e.g. {flag} +avx2,-fma")
    for item in items:
        if item[0] not in "+-":
            raise BadInputError(f"{flag} {_show(mattr)}: {_show(item)} needs + (on) or - (off) in front, "
                                f"e.g. +{item}")
        if not item[1:].strip():
            raise BadInputError(f"{flag} {_show(mattr)}: a feature name must follow {item[0]}, e.g. {item[0]}avx2")
    names = [item[1:] for item in items]
    unknown = sorted(set(names) - recognized_features(mcpu, names))
    if not unknown:
        return
    known = llvm_feature_names()
    if len(unknown) == 1:
        raise BadInputError(f"{flag} {_show(mattr)}: {_show(unknown[0])} is not a CPU feature LLVM knows"
                            f"{_did_you_mean(unknown[0], known)}")
    described = [f"{_show(name)}" + (f" (did you mean {', '.join(close)}?)" if (close := _nearest(name, known)) else "")
                 for name in unknown]
    raise BadInputError(f"{flag} {_show(mattr)}: not CPU features LLVM knows: {', '.join(described)}")


def check_cuda_arch(arch: Any) -> None:
    flag = "--cuda-arch"
    if not isinstance(arch, str):
        raise BadInputError(f"{flag} {_show(arch)}: an architecture is a string, e.g. {flag} sm_80")
    arches = cuda_arches()
    if arch in arches:
        return
    old = re.fullmatch(r"sm_(\d+)", arch)
    variant = re.fullmatch(r"(sm_\d+)[af]", arch)
    if old and int(old.group(1)) < MIN_CUDA_ARCH:
        raise BadInputError(f"{flag} {_show(arch)}: older than sm_{MIN_CUDA_ARCH}, the oldest architecture this "
                            f"backend compiles for")
    if variant and variant.group(1) in arches:
        raise BadInputError(f"{flag} {_show(arch)}: architecture-specific variants are not supported (an artifact "
                            f"records the least architecture it runs on); did you mean {variant.group(1)}?")
    if arch.isdigit() and f"sm_{arch}" in arches:
        hint = f"; did you mean sm_{arch}?"
    else:
        hint = _did_you_mean(arch, arches) or f" (known: {arches[0]} to {arches[-1]})"
    raise BadInputError(f"{flag} {_show(arch)}: not a CUDA architecture TVM compiles for{hint}")


def check_options(target: str, options: dict[str, Any]) -> None:
    """`TvmBackend.validate_options`: BadInputError (one line) for an option of another target, an
    unknown CPU, CPU feature or CUDA architecture. Unset (None or empty) options are not checked."""
    given = {k: v for k, v in options.items() if k in OPTIONS and v is not None and v != ""}
    for key in given:
        flag, meant_for = OPTIONS[key]
        if meant_for is not None and meant_for != target:
            raise BadInputError(f"{flag} is for --target {meant_for}, not {target}")
    if target == LLVM:
        if "mcpu" in given:
            check_mcpu(given["mcpu"])
        if "mattr" in given:
            check_mattr(given["mattr"], given.get("mcpu") or host_cpu())
        if "schedules" in given and given["schedules"] not in ("mlc", "none"):
            raise BadInputError(f"--tvm-schedules {given['schedules']}: expected mlc (mlc's CPU schedules) or none "
                                "(TVM's default loops)")
    elif target == CUDA and "cuda_arch" in given:
        check_cuda_arch(given["cuda_arch"])
    if "tuning_db" in given:
        from mlc.backends.tvm_tune import TuningDatabase

        TuningDatabase(Path(given["tuning_db"])).check_readable()


def unsupported_ops(graph: Graph) -> list[str]:
    """Ops (domain::op) of the graph and its sub-graphs that TVM's ONNX frontend cannot convert."""
    missing = set()
    known = convertible_ops()
    for node in graph.all_nodes():
        if node.domain != "" or node.op_type not in known:
            missing.add(f"{node.domain}::{node.op_type}" if node.domain != "" else node.op_type)
    return sorted(missing)


# Ops TVM 0.27's frontend has a converter for but converts wrongly, which have a function body.
_CONVERTED_WRONGLY = {"Attention"}  # its converter expects com.microsoft's attributes (num_heads)


def expand_for_tvm() -> set[str]:
    """Ops with an ONNX function body that TVM's frontend cannot convert or converts wrongly:
    expanded into their bodies before lowering."""
    from mlc.onnx_io.functions import ops_with_function_bodies

    random = {"Bernoulli"}  # its body draws from RandomUniformLike, which TVM lacks as well
    return (ops_with_function_bodies() - convertible_ops() - random) | _CONVERTED_WRONGLY


def convertible_ops() -> set[str]:
    from tvm.relax.frontend.onnx import onnx_frontend

    # If is converted by the frontend itself, the recurrent ops by tvm_rnn's converters (tvm_build)
    return set(onnx_frontend._get_convert_map()) | {"If"} | set(RECURRENT_OPS)


# Element types TVM 0.27 reads or converts wrongly: float8 casts wrap instead of saturating and
# read the bits wrongly, sub-byte types are not unpacked (all measured on the official node cases).
_UNTRUSTED_DTYPES = {DType.FLOAT8E4M3FN, DType.FLOAT8E4M3FNUZ, DType.FLOAT8E5M2, DType.FLOAT8E5M2FNUZ,
                     DType.FLOAT8E8M0, DType.FLOAT4E2M1, DType.INT4, DType.UINT4, DType.INT2, DType.UINT2,
                     DType.FLOAT6E2M3, DType.FLOAT6E3M2}


def untrusted(graph: Graph) -> list[str]:
    """What TVM's frontend converts without error but computes wrongly, one phrase each; the
    backend refuses such a graph rather than ship wrong numbers (legalize-tvm rewrites the cases
    that have a correct decomposition, so they never reach this list)."""
    found: dict[str, None] = {}
    for sub in graph.all_graphs():
        values = [*sub.inputs, *sub.initializers.values(), *sub.outputs]
        values += [v for node in sub for v in node.outputs if v is not None]
        inputs = {id(v) for v in sub.inputs}
        for value in values:
            t = value.type
            if isinstance(t, TensorType) and t.dtype in _UNTRUSTED_DTYPES:
                if t.dtype == DType.FLOAT8E8M0 and id(value) in inputs:
                    continue  # read correctly; only casts to it are wrong
                found[f"element type {t.dtype.short_name} (TVM converts it wrongly)"] = None
            elif isinstance(t, OptionalType) and isinstance(t.elem, SequenceType):
                found["optional sequences (TVM drops them)"] = None
        for node in sub:
            if node.domain != "":
                continue
            op = node.op_type
            first = node.inputs[0] if node.inputs else None
            if op == "Identity" and first is not None and isinstance(first.type, SequenceType | OptionalType):
                found["Identity of a sequence/optional (TVM returns its first tensor)"] = None
            elif op == "OptionalGetElement" and isinstance(node.outputs[0] and node.outputs[0].type, SequenceType):
                found["OptionalGetElement of a sequence (TVM returns its first tensor)"] = None
            elif (op in ("ReduceMax", "ReduceMin", "ReduceLogSum", "ReduceLogSumExp") and first is not None
                  and isinstance(first.type, TensorType) and first.type.shape is not None and 0 in first.type.shape):
                found[f"{op} over an empty tensor (TVM does not return the identity element)"] = None
            elif op == "Dropout" and len(node.outputs) > 1 and node.outputs[1] is not None and (
                    node.outputs[1].uses or node.outputs[1].is_graph_output):
                found["Dropout's mask output (TVM returns it as float32)"] = None
            if op == "NonMaxSuppression":
                found["NonMaxSuppression (TVM returns wrong selections)"] = None
            elif op == "RoiAlign" and node.attr("mode", "avg") in ("max", b"max"):
                found["RoiAlign mode=max (TVM averages)"] = None
            elif op == "Expand" and node.inputs[1] is not None and reads_input_values(node.inputs[1]):
                found["Expand with a runtime shape (TVM ignores the shape; bind it with --bind-inputs)"] = None
            elif op == "LayerNormalization" and any(v is not None and (v.uses or v.is_graph_output)
                                                   for v in node.outputs[1:]):
                found["LayerNormalization's Mean/InvStdDev outputs (TVM returns scalars)"] = None
    return list(found)


def _dim_text(dim: Any) -> str:
    return f"<{dim}>" if isinstance(dim, str) and dim else "<?>" if not isinstance(dim, int) else str(dim)


def static_shape_hint(graph: Graph, symbols: Iterable[Any] = ()) -> tuple[str, str]:
    """(where: the inputs and dims named, the `--static-shape` options that fix them) for the
    inputs holding one of the symbolic dims `symbols`, or every input with a dynamic dim."""
    wanted = {s for s in symbols if isinstance(s, str) and s}
    dynamic = [v for v in graph.inputs if isinstance(v.type, TensorType) and v.type.shape is not None
               and not v.type.is_static]
    chosen = [v for v in dynamic if wanted & set(v.type.shape)] or dynamic  # type: ignore[union-attr, arg-type]
    places: list[str] = []
    options: list[str] = []
    for value in chosen:
        shape = value.type.shape  # type: ignore[union-attr]
        assert shape is not None
        dims = [i for i, d in enumerate(shape) if not isinstance(d, int) and (not wanted or d in wanted)]
        dims = dims or [i for i, d in enumerate(shape) if not isinstance(d, int)]
        named = ", ".join(f"{i} ({shape[i]})" if isinstance(shape[i], str) else str(i) for i in dims)
        places.append(f"input {value.name} dim{'s' if len(dims) > 1 else ''} {named}")
        options.append(f"--static-shape {value.name}:{','.join(_dim_text(d) for d in shape)}")
    return "; ".join(places), " ".join(options)


_RECURRENT = set(RECURRENT_OPS)
_RNN_DTYPES = {DType.FLOAT, DType.FLOAT16, DType.DOUBLE}


def _dynamic_hint(graph: Graph) -> str:
    """For a TVM failure on a graph with dynamic input dims: which, and how to fix them."""
    where, options = static_shape_hint(graph)
    return f" (the model has dynamic dims: {where}; with fixed ones it may compile: {options})" if options else ""


def _recurrence_refusal(node: Any, x_type: Any) -> str | None:
    """Why tvm_rnn's loop kernel cannot run this LSTM/GRU/RNN node (one phrase), or None."""
    attrs = {name: node.attr(name) for name in node.attributes}
    lens = node.inputs[4] if len(node.inputs) > 4 else None
    reason = rnn_refusal(node.op_type, attrs, lens is not None)
    if reason is None and isinstance(x_type, TensorType) and x_type.dtype not in _RNN_DTYPES:
        reason = f"element type {x_type.dtype.short_name} is not f16, f32 or f64"
    return reason


def needs_fixed_shapes(graph: Graph, target: str = LLVM) -> str | None:
    """Why TVM cannot compile this graph with its dynamic dims (one phrase naming the op, the input
    and the dim, and the --static-shape that fixes it), or None. On llvm, the LSTM/GRU/RNN nodes
    that legalize-rnn left (`keep_ops`: default activations, fixed or dynamic length) run in
    tvm_rnn's loop kernel; a node that kernel cannot run (other activations, sequence_lens) is
    refused here, before TVM is asked, over a dynamic sequence with the --static-shape that lets
    legalize-rnn unroll it instead. The kernel has no GPU schedule: on cuda every recurrence left
    (a dynamic sequence) is refused that way. Other dynamic dims TVM cannot follow are found by
    TVM itself: its failure then names the dims to fix (`_dynamic_hint`)."""
    for node in graph.all_nodes():
        if node.domain != "" or node.op_type not in _RECURRENT:
            continue
        x = node.inputs[0] if node.inputs else None
        reason = (_recurrence_refusal(node, x.type if x is not None else None) if target == LLVM
                  else f"TVM's loop kernel for {node.op_type} runs on llvm only")
        if reason is None:
            continue
        what = f"{node.op_type} {node.name!r}" if node.name else node.op_type
        shape = x.type.shape if x is not None and isinstance(x.type, TensorType) else None
        seq = shape[1 if node.attr("layout", 0) == 1 else 0] if shape is not None and len(shape) == 3 else None
        if isinstance(seq, int):
            return f"{what}: {reason}, and legalize-rnn could not unroll it either"
        where, options = static_shape_hint(graph, [seq])
        if not options:
            return f"{what}: {reason}"
        return (f"{what} runs over a dynamic sequence ({where}) and {reason}; legalize-rnn unrolls a fixed "
                f"length: compile for one with {options}")
    return None


def target_spec_of(target: str, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(the TVM target spec the build gets, the artifact's requirements, the options recorded) for
    `target` and the backend options; `mlc tune` tunes for the same spec."""
    tvm = _tvm()
    if target == LLVM:
        mcpu = options.get("mcpu") or host_cpu()
        mattr = mattr_items(options.get("mattr") or "")
        target_spec: dict[str, Any] = {"kind": "llvm", "mcpu": mcpu, **({"mattr": list(mattr)} if mattr else {})}
        schedules = str(options.get("schedules") or "mlc")
        if schedules != "mlc":
            target_spec["mlc_schedules"] = schedules
        with native_stderr_to_log("TVM target"):
            tvm_target = tvm.target.Target({k: v for k, v in target_spec.items() if k != "mlc_schedules"})
        requirements: dict[str, Any] = {"mtriple": str(tvm_target.attrs.get("mtriple", "")), "mcpu": mcpu,
                                        "cpu_features": cpu_features(mcpu, mattr)}
        recorded: dict[str, Any] = {"mcpu": mcpu, "mattr": ",".join(mattr), "schedules": schedules}
    else:
        arch = options.get("cuda_arch") or DEFAULT_CUDA_ARCH
        # Sizes every NVIDIA GPU since sm_50 has; given so that TVM does not guess (and warn).
        target_spec = {"kind": "cuda", "arch": arch, "max_shared_memory_per_block": 49152,
                       "max_threads_per_block": 1024, "thread_warp_size": 32}
        requirements = {"cuda_arch": arch}
        recorded = {"cuda_arch": arch}
    return target_spec, requirements, recorded


def _declared_dtype(type_text: str | None) -> np.dtype | None:
    """The numpy dtype of a manifest output type (`f32[N]`), None when it is not a tensor type."""
    from mlc.ir.parser import parse_type

    try:
        declared = parse_type(type_text) if type_text else None
        return declared.dtype.numpy if isinstance(declared, TensorType) and declared.dtype is not None else None
    except (MlcError, TypeError, ValueError):
        return None


class TvmRunner(Runner):
    """Runs module.so in TVM's Relax VM. An output TVM computes as a scalar expression (a dim read
    by Shape/Gather, cast) comes back as a Python int or float, not a tensor: it is given the
    output's declared dtype (`output_dtypes`), not numpy's default int64/float64 (fuzz seed 27:
    Cast(Gather(Shape(x), 0), float) came back as float64)."""

    def __init__(self, library: Path, target: str, input_names: list[str], output_names: list[str],
                 output_dtypes: list[np.dtype | None] | None = None) -> None:
        tvm = _tvm()
        from tvm import relax

        self.tvm = tvm
        self.device = tvm.cpu() if target == LLVM else tvm.cuda(0)
        with native_stderr_to_log("TVM load"):
            module = tvm.runtime.load_module(str(library))
            self.vm = relax.VirtualMachine(module, self.device)
        self.input_names = input_names
        self.output_names = output_names
        self.output_dtypes = output_dtypes or [None] * len(output_names)

    def _to_numpy(self, value: Any, dtype: np.dtype | None = None) -> Any:
        tvm = self.tvm
        if isinstance(value, tvm.runtime.Tensor):
            return value.numpy()
        if isinstance(value, tvm.runtime.ShapeTuple):
            return np.array([int(v) for v in value], dtype=dtype or np.int64)
        if isinstance(value, bool | int | float | np.generic):
            return np.array(value, dtype=dtype)
        return [self._to_numpy(v) for v in value]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [self.tvm.runtime.tensor(np.require(feeds[name], requirements="C"), device=self.device)
                for name in self.input_names if name in feeds]
        result = self.vm["main"](*args)
        if len(self.output_names) == 1:
            return {self.output_names[0]: self._to_numpy(result, self.output_dtypes[0])}
        return {name: self._to_numpy(v, dtype)
                for name, v, dtype in zip(self.output_names, result, self.output_dtypes, strict=True)}


def _gpu_exists() -> bool:
    with native_stderr_to_log("TVM"):
        return bool(_tvm().cuda(0).exist)


class TvmBackend(Backend):
    name = "tvm"
    targets = (LLVM, CUDA)

    def validate_options(self, target: str, options: dict[str, Any]) -> None:
        """`--mcpu` a CPU LLVM knows for the host triple, `--mattr` +/- features LLVM knows,
        `--cuda-arch` a known sm_XY, each only for its own target (see `check_options`)."""
        check_options(target, options)

    def available(self, target: str) -> Availability:
        try:
            tvm = _tvm()
        except ImportError:
            return Availability(False, "apache-tvm is not installed: pip install 'mlc[tvm]'")
        codegen = "llvm" if target == LLVM else "cuda"
        if tvm.get_global_func(f"target.build.{codegen}", allow_missing=True) is None:
            return Availability(False, f"this TVM build has no {codegen} code generator")
        if target == CUDA:
            import shutil

            if shutil.which("nvcc") is None:
                return Availability(False, "cuda needs nvcc (the CUDA toolkit) to compile")
            gpu = "a GPU is present" if _gpu_exists() else "compiles here; running needs an NVIDIA GPU"
            return Availability(True, f"apache-tvm {tvm.__version__} ({gpu})")
        return Availability(True, f"apache-tvm {tvm.__version__} (host CPU {host_cpu()})")

    def legalization(self, target: str) -> list[str]:
        """Decompose what the frontend lacks (recurrent and quantized-linear ops, ops with an ONNX
        function body), rewrite what it gets wrong (legalize-tvm), then fold what became constant
        (shapes of the decompositions) so that the frontend sees constants where it needs them."""
        from mlc.pass_api import registered_passes

        available = registered_passes()
        specs = [name for name in ("legalize-rnn", "legalize-qlinear") if name in available]
        if target == LLVM:  # tvm_rnn's loop kernel beats unrolling (8x on a 2-layer bidirectional LSTM)
            specs = [f"{s}{{keep_ops={'+'.join(RECURRENT_OPS)}}}" if s == "legalize-rnn" else s for s in specs]
        if "expand-functions" in available:
            specs.insert(0, "expand-functions{ops=" + "+".join(sorted(expand_for_tvm())) + "}")
        legalize = "legalize-tvm{f16_as_f32=true}" if target == LLVM else "legalize-tvm"
        shapes = ["legalize-tvm-shapes"] if "legalize-tvm-shapes" in available else []
        return [*specs, legalize, *shapes, "fold-constants", "dce"]

    def check_runnable(self, target: str, requirements: dict[str, Any]) -> Availability:
        try:
            tvm = _tvm()
        except ImportError:
            return Availability(False, "apache-tvm is not installed: pip install 'mlc[tvm]'")
        if target == LLVM:
            needed = set(requirements.get("cpu_features", []))
            have = set(cpu_features(host_cpu()))
            lacking = sorted(f for f in needed - have if f.startswith("+"))
            if lacking:
                return Availability(False, f"this CPU ({host_cpu()}) lacks {', '.join(lacking[:8])}"
                                           + (" ..." if len(lacking) > 8 else "")
                                           + f"; recompile with --mcpu {host_cpu()}")
            return Availability(True, "")
        if not _gpu_exists():
            return Availability(False, "no CUDA GPU on this machine")
        arch = requirements.get("cuda_arch", DEFAULT_CUDA_ARCH)
        with native_stderr_to_log("TVM"):
            have = tvm.cuda(0).compute_version.replace(".", "")
        if int(have) < int(arch.removeprefix("sm_")):
            return Availability(False, f"the artifact needs {arch}, this GPU is sm_{have}")
        return Availability(True, "")

    def compile(self, graph: Graph, target: str, options: dict[str, Any], out_dir: Path) -> CompileResult:
        tvm = _tvm()
        check_options(target, options)  # the driver checks first; a direct caller is checked here
        fixed = needs_fixed_shapes(graph, target)
        if fixed is not None:
            raise BadInputError(f"target {target}: {fixed}")
        missing = unsupported_ops(graph)
        if missing:
            raise BadInputError(f"target {target}: TVM's ONNX frontend cannot convert {', '.join(missing)}")
        wrong = untrusted(graph)
        if wrong:
            raise BadInputError(f"target {target}: refused, TVM computes these wrongly: {'; '.join(wrong)}")
        opset = graph.opset_version("") or 17
        target_spec, requirements, recorded = target_spec_of(target, options)
        tuning = options.get("tuning_db")
        if tuning:
            from mlc.backends.tvm_tune import TuningDatabase, target_string

            with native_stderr_to_log("TVM target"):
                records = TuningDatabase(Path(tuning)).target_folder(target_string(target_spec))
            target_spec["mlc_tuning_db"] = str(records.resolve())
        library = out_dir / "module.so"
        if options.get("in_process"):  # faster (no second TVM import); bytes may vary run to run
            model = export_onnx(graph)
            with native_stderr_to_log("TVM build"):
                counts = build_library(model, target_spec, library, opset)
        else:
            model_path = out_dir / ".tvm-input.onnx"
            counts_path = Path(str(library) + COUNTS_SUFFIX)
            save_onnx(graph, model_path)
            try:
                failure = build_in_child(model_path, target_spec, library, opset)
                counts = json.loads(counts_path.read_text()) if counts_path.is_file() else None
            finally:
                for leftover in [*out_dir.glob(".tvm-input.onnx*"), counts_path]:
                    leftover.unlink(missing_ok=True)
            if failure is not None:
                raise BadInputError(f"target {target}: TVM failed: {failure}{_dynamic_hint(graph)}")
        if tuning:
            from mlc.backends.tvm_tune import TuningDatabase

            recorded["tuning_db"] = {"hash": TuningDatabase.records_hash(Path(target_spec["mlc_tuning_db"])),
                                     **(counts or {"tuned": 0, "defaulted": 0, "missing": 0})}
        requirements["tvm_runtime"] = tvm.__version__
        return CompileResult(files=["module.so"], requirements=requirements, options=recorded)

    def load(self, artifact_dir: Path, manifest: dict[str, Any]) -> Runner:
        return TvmRunner(artifact_dir / "module.so", manifest["target"],
                         [i["name"] for i in manifest["inputs"] if not i.get("default")],
                         [o["name"] for o in manifest["outputs"]],
                         [_declared_dtype(o.get("type")) for o in manifest["outputs"]])

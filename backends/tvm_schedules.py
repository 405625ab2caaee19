"""CPU schedules for TVM's `llvm` target without tuning: which rules schedule which kernels.

TVM 0.27's default Relax pipeline for `llvm` legalizes every operator to TIR and compiles the
loops as they are: no tiling, no vectors, one core (the project's zoo ran at 0.06x onnxruntime's
speed, median). Its `dlight` rules for CPU cover only GEMV and reductions. This module builds the
same pipeline with one step added after fusion: `dlight.ApplyDefaultSchedule` over mlc's rules,
first match wins, in this order:

* `tvm_sched_conv_nhwc.Conv2dNHWCRule`: 2-D convolutions, dense and depthwise, with their fused
  epilogues, in the channels-last layout `fusion_passes` converts them to (ResNet-18 at 224x224,
  fixed shapes, 0.18 -> 0.41 of onnxruntime's speed; MobileNetV3 0.33 -> 0.57; with dynamic image
  sizes MobileNetV3 0.22 -> 0.30, ResNet-18 0.12 -> 0.16; AVX-512 Xeon, 2026-12-05);
* `tvm_sched_conv.Conv2dRule`: NCHW 2-D convolutions (what `conv_layout="NCHW"` leaves);
* `tvm_sched_matmul.MatmulRule`: matmul / dense / batch matmul;
* dlight's own `cpu.GEMV` (not its `cpu.Reduction`: it takes MobileNetV3's depthwise convolutions
  and means and made the model 2.2x slower, 7.5 -> 3.4 ms without it, BERT 0.87 -> 0.66 ms, ResNet-18
  unchanged; interleaved medians, 2026-12-05);
* `tvm_sched_generic.ElementwiseRule`: every other spatial kernel (elementwise, layout, pooling),
  parallel over cores and vectorized.

A rule module that is missing (not yet written) is skipped. A kernel no rule takes keeps TVM's
default loops. Rules are deterministic: the same module and target give the same schedule, so
artifacts stay byte-identical. `schedules="none"` (backend option) builds with TVM's default
pipeline, for comparison.
"""

from __future__ import annotations

import importlib
from typing import Any

SCHEDULES = ("mlc", "none")
_RULES = (("mlc.backends.tvm_sched_conv_nhwc", "Conv2dNHWCRule"), ("mlc.backends.tvm_sched_conv", "Conv2dRule"),
          ("mlc.backends.tvm_sched_matmul", "MatmulRule"),
          ("dlight", "GEMV"), ("mlc.backends.tvm_sched_generic", "ElementwiseRule"))


def guarded(rule: Any) -> Any:
    """dlight's own `rule`, returning None (not applicable: the next rule is tried) where it
    raises. dlight's GEMV analysis asserts that a reduction has a reduction loop, which a
    reduction of extent 1 (MatMul [.., 1] x [1, ..]) no longer has once normalized: the
    assertion failed the whole build of a valid model (fuzz seed 500036)."""
    from tvm import s_tir
    from tvm.s_tir.dlight.base import ScheduleRule

    class Guarded(ScheduleRule):
        def apply(self, func: Any, target: Any, tunable: bool) -> Any:
            try:
                return rule.apply(func, target, tunable)
            except (AssertionError, ValueError, s_tir.ScheduleError):
                return None

        def __repr__(self) -> str:
            return f"guarded({type(rule).__name__})"

    return Guarded()


def gpu_rules() -> list[Any]:
    """dlight's GPU rules, in the order they are tried, each guarded (`guarded`)."""
    import tvm.s_tir.dlight as dl

    return [guarded(r) for r in (dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(), dl.gpu.GeneralReduction(),
                                 dl.gpu.Fallback())]


def cpu_rules() -> list[Any]:
    """The rule instances, in the order they are tried (dlight's guarded: `guarded`)."""
    import tvm.s_tir.dlight as dl

    rules: list[Any] = []
    for module_name, class_name in _RULES:
        if module_name == "dlight":
            rules.append(guarded(getattr(dl.cpu, class_name)()))
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        rules.append(getattr(module, class_name)())
    return rules


def _channels_last() -> Any:
    """Relax `ConvertLayout` (conv2d -> NHWC data, HWIO weights) + `FoldConstant`, for a module
    that has 2-D convolutions; a module TVM's layout conversion fails on (some ops' layout
    inference refuses: "Invalid SLayout", an unknown layout on one side, seen on dynamic-size
    upsampling and 3-D layouts) keeps its layout, and its convolutions `tvm_sched_conv`'s NCHW
    rule. Deterministic either way, so `mlc tune` and `mlc compile` see the same kernels."""
    import tvm
    import tvm_ffi
    from tvm import relax

    @tvm.transform.module_pass(opt_level=0, name="mlc.ChannelsLast")
    def _pass(mod: Any, _ctx: Any) -> Any:
        conv2d = tvm.ir.Op.get("relax.nn.conv2d")
        convs: list[Any] = []

        def visit(call: Any) -> None:
            if call.op.same_as(conv2d):
                convs.append(call)

        for func in mod.functions.values():
            if isinstance(func, relax.Function):
                tvm_ffi.structural_walk(func, (relax.Call, visit), order="post")
        if not convs:
            return mod
        try:
            return tvm.transform.Sequential([relax.transform.ConvertLayout({"relax.nn.conv2d": ["NHWC", "HWIO"]}),
                                             relax.transform.Normalize(), relax.transform.FoldConstant()])(mod)
        except Exception:  # noqa: BLE001 - any TVM refusal: the module as it was (see the docstring)
            return mod

    return _pass


def _mark_constant_weights() -> Any:
    """Mark the parameters of each fused convolution kernel that every call passes a constant
    (the model's weights) as TVM's `layout_free_buffers`: the packing in
    `tvm_sched_conv_nhwc._pack_weights` (and MetaSchedule's layout rewrite) may change their
    layout, since `_prepack_weights` then repacks the constant at compile time. Only convolution
    kernels: TVM's own `AttachAttrLayoutFreeBuffers` marks every kernel and broke others (a cumsum
    over a dynamic sequence lost its shape variable)."""
    import tvm
    import tvm_ffi
    from tvm import relax, tirx

    @tvm.transform.module_pass(opt_level=0, name="mlc.MarkConstantWeights")
    def _pass(mod: Any, _ctx: Any) -> Any:
        call_tir = tvm.ir.Op.get("relax.call_tir")
        constant: dict[str, set[int]] = {}

        def visit(node: Any) -> None:
            if node.op.same_as(call_tir) and isinstance(node.args[0], tvm.ir.GlobalVar):
                fields = node.args[1].fields if isinstance(node.args[1], relax.Tuple) else []
                found = {i for i, arg in enumerate(fields) if isinstance(arg, tvm.ir.expr.GenericConst)}
                name = node.args[0].name_hint
                constant[name] = constant[name] & found if name in constant else found

        for func in mod.functions.values():
            if isinstance(func, relax.Function):
                tvm_ffi.structural_walk(func, (relax.Call, visit), order="post")
        marked = mod.clone()  # a pass leaves its input module as it was
        for gv, func in list(mod.functions.items()):
            if isinstance(func, tirx.PrimFunc) and "conv2d" in gv.name_hint and constant.get(gv.name_hint):
                marked.update_func(gv, func.with_attr("layout_free_buffers", sorted(constant[gv.name_hint])))
        return marked

    return _pass


def _prepack_weights(mod: Any) -> Any:
    """Run the weight packing the schedules marked (blocks annotated as layout-rewrite
    preprocesses: `tvm_sched_conv_nhwc._pack_weights`, MetaSchedule's layout rewrite) at compile
    time: `SplitLayoutRewritePreproc` moves each into a function of its own, `FoldConstant` runs it
    on the constant weights. TVM's split pass asserts on some kernels that have no blocks (loop
    kernels such as `tvm_rnn`'s): such a module, or one with nothing to pack, is left as it is, and
    a packing block then runs inside its kernel on every call (correct, slower)."""
    import tvm
    import tvm_ffi
    from tvm import relax, s_tir, tirx

    marked: list[Any] = []

    def visit(node: Any) -> None:
        if "meta_schedule.layout_rewrite_preproc" in node.annotations:
            marked.append(node)

    for func in mod.functions.values():
        if isinstance(func, tirx.PrimFunc):
            tvm_ffi.structural_walk(func, (s_tir.SBlock, visit), order="post")
    if not marked:
        return mod
    try:
        return tvm.transform.Sequential([relax.transform.SplitLayoutRewritePreproc(), relax.transform.FoldConstant(),
                                         relax.transform.DeadCodeElimination()])(mod)
    except Exception:  # noqa: BLE001 - any TVM refusal: the module as it was (see the docstring)
        return mod


def fusion_passes(target: Any, conv_layout: str = "NHWC") -> list[Any]:
    """Library dispatch, legalization to TIR and fusion for `target`: the module whose fused
    PrimFuncs are the tuning tasks (`mlc tune`) and the one a tuning database is applied to, so
    that the database's workloads match the build's functions structurally.

    On `llvm` with `conv_layout="NHWC"` the 2-D convolutions are first converted to channels-last
    data and HWIO weights (Relax `ConvertLayout`: transposes at the model's edges, the ops between
    convolutions follow the layout) and the weights' new layout is folded into the constants, for
    `tvm_sched_conv_nhwc` (why channels-last: its module doc); those with a symbolic width are
    legalized into whole column tiles (`tvm_conv_legalize`). "NCHW" keeps the model's layout.
    float32 exp, sigmoid, softmax and erf are legalized as inline arithmetic (`tvm_inline_math`)."""
    from tvm import relax

    if target.kind.name == "llvm":
        from tvm.relax.backend.cpu_generic import pipeline as cpu

        from mlc.backends.tvm_conv_legalize import conv2d_whole_tiles
        from mlc.backends.tvm_inline_math import legalize_pass
        from mlc.backends.tvm_sched_conv_nhwc import tile_columns

        nhwc = conv_layout == "NHWC"
        legalize = legalize_pass({"relax.nn.conv2d": conv2d_whole_tiles(tile_columns(target))} if nhwc else None)
        return [*([_channels_last()] if nhwc else []), *cpu.library_dispatch_passes(target), legalize,
                relax.transform.AnnotateTIROpPattern(), relax.transform.FoldConstant(), relax.transform.FuseOps(),
                relax.transform.FuseTIR(), _mark_constant_weights()]
    try:
        dispatch = list(relax.pipeline.library_dispatch_passes(target))
    except (ValueError, AttributeError):
        dispatch = []
    return [*dispatch, relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(),
            relax.transform.FoldConstant(), relax.transform.FuseOps(), relax.transform.FuseTIR()]


def _prim_funcs(mod: Any) -> dict[str, bool]:
    """Each PrimFunc of `mod` by name: whether it is marked scheduled."""
    from tvm import tirx

    return {gv.name_hint: bool(int(func.attrs.get("tirx.is_scheduled", 0)) if func.attrs else False)
            for gv, func in mod.functions.items() if isinstance(func, tirx.PrimFunc)}


def relax_pipeline(target: Any, rules: list[Any] | None = None, *, apply_database: bool = False,
                   counts: dict[str, int] | None = None, conv_layout: str = "NHWC") -> Any:
    """TVM's CPU pipeline (`relax.backend.cpu_generic`) with `ApplyDefaultSchedule(rules)` after
    legalization and fusion.

    With `apply_database` (the build runs inside a MetaSchedule database's `with` block:
    `mlc compile --tuning-db`), `MetaScheduleApplyDatabase` comes between fusion and the rules: a
    fused function with a tuning record gets its tuned schedule (marked scheduled, so the rules
    pass it by), the others get mlc's rules as without a database. On `cuda` (only with a
    database) the rules are dlight's GPU ones. `counts`, when given, receives how many fused
    functions were `tuned` (a record applied), `defaulted` (no record; a rule scheduled it) and
    `missing` (neither: TVM's plain loops). `conv_layout`: as `fusion_passes`.

    On `llvm`, after scheduling, `SplitLayoutRewritePreproc` + `FoldConstant` run the weight
    packing a schedule marked (mlc's conv rule, or MetaSchedule's layout rewrite in a tuned one)
    once at compile time on the constant weights, so the artifact holds the packed weights."""
    import tvm
    import tvm.s_tir.dlight as dl
    from tvm import relax

    gpu = target.kind.name != "llvm"
    if rules is not None:
        chosen = rules
    elif gpu:
        chosen = gpu_rules()
    else:
        chosen = cpu_rules()

    @tvm.transform.module_pass(opt_level=0)
    def _pipeline(mod: Any, _ctx: Any) -> Any:
        with target:
            mod = tvm.transform.Sequential(fusion_passes(target, conv_layout))(mod)
            before = _prim_funcs(mod)
            if apply_database:
                mod = relax.transform.MetaScheduleApplyDatabase()(mod)
            tuned = _prim_funcs(mod)
            if chosen:
                mod = dl.ApplyDefaultSchedule(*chosen)(mod)
            scheduled = _prim_funcs(mod)
            if counts is not None:
                todo = [name for name, done in before.items() if not done]
                counts["tuned"] = sum(1 for name in todo if tuned.get(name))
                counts["defaulted"] = sum(1 for name in todo if not tuned.get(name) and scheduled.get(name))
                counts["missing"] = sum(1 for name in todo if not tuned.get(name) and not scheduled.get(name))
            if not gpu:
                mod = _prepack_weights(mod)
            if gpu:
                lower = [*relax.pipeline.dataflow_lower_passes(target), *relax.pipeline.finalize_passes(target)]
            else:
                from tvm.relax.backend.cpu_generic import pipeline as cpu

                lower = [*cpu.dataflow_lower_passes(target), *cpu.finalize_passes(target)]
            return tvm.transform.Sequential(lower)(mod)

    return _pipeline

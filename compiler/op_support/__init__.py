"""Which ops each target can build: a table per target, a per-node report, one line to refuse with.

    support_table(target) -> SupportTable        (domain, op_type) -> opset ranges, conditions
    support_report(graph, target) -> SupportReport every node checked at the model's opsets
    require_supported(graph, target, model)      BadInputError (exit 2) with the report's one line

The facts come from the libraries where they tell them: onnxruntime's kernel registry (`ort`),
Apache TVM's Relax ONNX frontend converters (`tvm`, imported only for llvm/cuda), and, since
TensorRT cannot be imported without a GPU, NVIDIA's published ONNX parser matrix as data
(`tensorrt_ops`). `mlc targets --support MODEL` prints them for a model.
"""

from mlc.op_support.report import (
    NodeSupport,
    OpSupport,
    SupportReport,
    require_supported,
    support_report,
    support_table,
)
from mlc.op_support.table import OpRange, Status, SupportTable, Verdict

__all__ = ["NodeSupport", "OpRange", "OpSupport", "Status", "SupportReport", "SupportTable", "Verdict",
           "require_supported", "support_report", "support_table"]

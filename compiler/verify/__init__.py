"""Numeric verification: reference execution, input generation, tolerant comparison."""

from mlc.verify.compare import CheckResult, OutputCheck, compare_outputs, tolerance_for
from mlc.verify.inputs import InputSpec, load_inputs, make_inputs
from mlc.verify.reference import ReferenceError, run_graph, run_model

__all__ = ["CheckResult", "InputSpec", "OutputCheck", "ReferenceError", "compare_outputs", "load_inputs",
           "make_inputs", "run_graph", "run_model", "tolerance_for"]

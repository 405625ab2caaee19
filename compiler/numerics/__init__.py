"""Numeric verification: reference execution, input generation, tolerant comparison."""

from mlc.numerics.compare import CheckResult, OutputCheck, compare_outputs, tolerance_for
from mlc.numerics.inputs import InputSpec, load_inputs, make_inputs
from mlc.numerics.reference import ReferenceError, run_graph, run_model

__all__ = ["CheckResult", "InputSpec", "OutputCheck", "ReferenceError", "compare_outputs", "load_inputs",
           "make_inputs", "run_graph", "run_model", "tolerance_for"]

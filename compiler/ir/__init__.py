"""The mlc graph IR: values, nodes, graphs, types, constants, text form, verifier, equality."""

from mlc.ir.attributes import Attr, AttrType
from mlc.ir.core import Function, Graph, ModelInfo, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.equality import assert_graph_equal, graph_difference
from mlc.ir.irerror import IRError
from mlc.ir.parser import parse_ir
from mlc.ir.printer import print_ir, print_node
from mlc.ir.tensor import SparseTensor, Tensor, TensorDataUnavailable
from mlc.ir.types import MapType, OpaqueType, OptionalType, SequenceType, SparseTensorType, TensorType, Type
from mlc.ir.verifier import verify

__all__ = [
    "Attr", "AttrType", "DType", "Function", "Graph", "IRError", "MapType", "ModelInfo", "Node",
    "OpaqueType", "OptionalType", "SequenceType", "SparseTensor", "SparseTensorType", "Tensor",
    "TensorDataUnavailable", "TensorType", "Type", "Value", "assert_graph_equal", "graph_difference",
    "parse_ir", "print_ir", "print_node", "verify",
]

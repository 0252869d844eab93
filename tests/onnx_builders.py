"""Hand-built ONNX models of single operators, for hand-computed cost checks."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FLOAT = TensorProto.FLOAT


def weight(name: str, shape: tuple[int, ...], seed: int = 0) -> onnx.TensorProto:
    return numpy_helper.from_array(np.random.default_rng(seed).standard_normal(shape).astype(np.float32), name)


def ints(name: str, values: list[int]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def single_op(op: str, inputs: dict[str, tuple[int, ...]], output: str = "y", initializers: list | None = None,
              input_names: list[str] | None = None, opset: int = 17, **attrs: object) -> onnx.ModelProto:
    """A model with one ``op`` node; ``inputs`` are graph inputs (name → shape), axis 0 symbolic."""
    init = initializers or []
    init_names = [t.name for t in init]
    names = input_names or [*inputs, *init_names]
    graph_inputs = [helper.make_tensor_value_info(n, FLOAT, ["batch", *s[1:]]) for n, s in inputs.items()]
    node = helper.make_node(op, names, [output], name=f"{op.lower()}0", **attrs)
    graph = helper.make_graph([node], "g", graph_inputs, [helper.make_tensor_value_info(output, FLOAT, None)], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def chain(nodes: list[onnx.NodeProto], inputs: dict[str, tuple[int, ...]], outputs: list[str],
          initializers: list | None = None, opset: int = 17) -> onnx.ModelProto:
    graph_inputs = [helper.make_tensor_value_info(n, FLOAT, ["batch", *s[1:]]) for n, s in inputs.items()]
    graph = helper.make_graph(nodes, "g", graph_inputs, [helper.make_tensor_value_info(o, FLOAT, None) for o in outputs],
                              initializers or [])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])

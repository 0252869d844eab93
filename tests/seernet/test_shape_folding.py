"""Shape arithmetic folded with numpy (seernet.shapes._FAST_FOLDS) equals onnx's reference evaluator."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

from seernet.shapes import _FAST_FOLDS


def _reference(op: str, args: list[np.ndarray], opset: int, **attrs) -> np.ndarray:
    names = [f"in{k}" for k in range(len(args))]
    node = helper.make_node(op, names, ["out"], **attrs)
    inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
              for n, a in zip(names, args)]
    graph = helper.make_graph([node], "g", inputs, [helper.make_empty_tensor_value_info("out")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return ReferenceEvaluator(model).run(None, dict(zip(names, args)))[0], node


CASES = [
    ("Unsqueeze", [np.array(7, dtype=np.int64), np.array([0], dtype=np.int64)], 13, {}),
    ("Unsqueeze", [np.array([3, 4], dtype=np.int64), np.array([-1, 0], dtype=np.int64)], 13, {}),
    ("Unsqueeze", [np.array([[1, 2]], dtype=np.int64)], 11, {"axes": [1, 3]}),
    ("Gather", [np.array([8, 3, 224, 224], dtype=np.int64), np.array(0, dtype=np.int64)], 13, {}),
    ("Gather", [np.array([8, 3, 224, 224], dtype=np.int64), np.array([-1, 1], dtype=np.int64)], 13, {"axis": 0}),
    ("Gather", [np.arange(12, dtype=np.int64).reshape(3, 4), np.array([[0, 2]], dtype=np.int64)], 13, {"axis": 1}),
    ("Gather", [np.array([2.5, 4.0], dtype=np.float32), np.array(-1, dtype=np.int64)], 13, {}),
    ("Concat", [np.array([1], dtype=np.int64), np.array([-1, 192], dtype=np.int64)], 13, {"axis": 0}),
    ("Concat", [np.ones((2, 1), dtype=np.int64), np.zeros((2, 3), dtype=np.int64)], 13, {"axis": -1}),
]


@pytest.mark.parametrize("op,args,opset,attrs", CASES)
def test_numpy_folds_equal_the_reference_evaluator(op, args, opset, attrs):
    expected, node = _reference(op, args, opset, **attrs)
    got = _FAST_FOLDS[op](node, args)
    assert got.dtype == expected.dtype and got.shape == expected.shape and np.array_equal(got, expected)

"""seernet.shape_rules answers as onnx's shape inference does, or not at all."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, shape_inference

from seernet.shape_rules import output_shapes

F, I64, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def onnx_outputs(op: str, inputs: list, attrs: dict, outputs: int = 1, opset: int = 17):
    """What onnx infers for the one operator (strict), as [(shape, type)]; None where it refuses or cannot."""
    names = [f"i{k}" if t is not None else "" for k, t in enumerate(inputs)]
    node = helper.make_node(op, names, [f"o{k}" for k in range(outputs)], **attrs)
    values = [helper.make_tensor_value_info(n, t[1], t[0]) for n, t in zip(names, inputs) if t is not None]
    graph = helper.make_graph([node], "g", values, [helper.make_empty_tensor_value_info(f"o{k}")
                                                    for k in range(outputs)])
    try:
        model = shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]),
                                             strict_mode=True)
    except Exception:
        return None
    out = []
    for value in model.graph.output:
        tensor = value.type.tensor_type
        if not tensor.HasField("shape") or any(not d.HasField("dim_value") for d in tensor.shape.dim):
            return None
        out.append((tuple(d.dim_value for d in tensor.shape.dim), tensor.elem_type))
    return out


def decoded(attrs: dict) -> dict:
    """Attributes as the fast lane hands them to the rules (onnx.helper.get_attribute_value)."""
    node = helper.make_node("X", [], [], **attrs)
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


CASES = [
    ("Relu", [((2, 3, 8, 8), F)], {}),
    ("Softmax", [((2, 5, 7), F)], {"axis": -1}),
    ("Clip", [((4, 6), F), None, None], {}),
    ("LayerNormalization", [((2, 9, 16), F), ((16,), F), ((16,), F)], {"axis": -1}),
    ("BatchNormalization", [((2, 4, 5, 5), F), ((4,), F), ((4,), F), ((4,), F), ((4,), F)], {}),
    ("Add", [((2, 3, 8, 8), F), ((3, 1, 1), F)], {}),
    ("Mul", [((1, 197, 192), F), ((4, 1, 192), F)], {}),
    ("Where", [((1, 1, 4, 4), BOOL), ((2, 3, 4, 4), F), ((1,), F)], {}),
    ("Conv", [((2, 16, 32, 32), F), ((32, 16, 3, 3), F), ((32,), F)], {"pads": [1, 1, 1, 1], "strides": [2, 2]}),
    ("Conv", [((1, 32, 15, 17), F), ((32, 1, 5, 5), F)], {"group": 32, "pads": [2, 1, 2, 1], "dilations": [2, 1]}),
    ("Conv", [((3, 8, 20), F), ((4, 8, 3), F)], {"kernel_shape": [3]}),
    ("MaxPool", [((2, 8, 33, 33), F)], {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ("AveragePool", [((2, 8, 32, 32), F)], {"kernel_shape": [2, 2], "strides": [2, 2]}),
    ("GlobalAveragePool", [((4, 64, 7, 7), F)], {}),
    ("Gemm", [((8, 512), F), ((1000, 512), F), ((1000,), F)], {"transB": 1}),
    ("Gemm", [((512, 8), F), ((512, 10), F)], {"transA": 1}),
    ("MatMul", [((2, 4, 197, 48), F), ((2, 4, 48, 197), F)], {}),
    ("MatMul", [((8, 197, 192), F), ((192, 768), F)], {}),
    ("Flatten", [((2, 3, 4, 5), F)], {"axis": 1}),
    ("Flatten", [((2, 3, 4, 5), F)], {"axis": -1}),
    ("Concat", [((2, 3, 4), F), ((2, 5, 4), F)], {"axis": 1}),
    ("Transpose", [((2, 3, 4, 5), F)], {"perm": [0, 2, 3, 1]}),
    ("Transpose", [((2, 3, 4), F)], {}),
]


@pytest.mark.parametrize("op,inputs,attrs", CASES, ids=[c[0] for c in CASES])
def test_a_rule_gives_what_onnx_infers(op, inputs, attrs):
    expected = onnx_outputs(op, inputs, attrs)
    assert expected is not None
    assert output_shapes(op, inputs, decoded(attrs), 1) == expected


DECLINED = [
    ("Conv", [((1, 3, 9, 9), F), ((4, 3, 3, 3), F)], {"auto_pad": "SAME_UPPER"}),
    ("MaxPool", [((1, 3, 9, 9), F)], {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1}),
    ("Relu", [((4, 4), I64)], {}),  # onnx refuses Relu on int64: the rule must not answer for it
    ("Add", [((2, 3), F), ((4, 3), F)], {}),  # not broadcastable
    ("Add", [((2, 3), F), ((2, 3), I64)], {}),  # two types
    ("Conv", [((1, 3, 9, 9), F), ((4, 5, 3, 3), F)], {}),  # channels disagree
    ("Gemm", [((8, 5), F), ((6, 10), F)], {}),
    ("Cast", [((4,), F)], {"to": I64}),  # no rule
]


@pytest.mark.parametrize("op,inputs,attrs", DECLINED, ids=[f"{c[0]}-{k}" for k, c in enumerate(DECLINED)])
def test_what_a_rule_does_not_cover_is_left_to_onnx(op, inputs, attrs):
    assert output_shapes(op, inputs, decoded(attrs), 1) is None


def test_random_convolutions_pools_and_broadcasts_agree_with_onnx():
    """Seeded random cases: wherever a rule answers, onnx infers the same; it answers most of them."""
    rng = np.random.default_rng(5)
    answered = 0
    for _ in range(150):
        kind = rng.integers(3)
        if kind == 0:
            groups = int(rng.choice([1, 2, 4]))
            cin, cout, k = groups * int(rng.integers(1, 5)), groups * int(rng.integers(1, 5)), int(rng.integers(1, 6))
            pads = [int(p) for p in rng.integers(0, 3, 4)]
            attrs = {"group": groups, "pads": pads, "strides": [int(s) for s in rng.integers(1, 4, 2)],
                     "dilations": [int(d) for d in rng.integers(1, 3, 2)]}
            inputs = [((2, cin, int(rng.integers(6, 40)), int(rng.integers(6, 40))), F), ((cout, cin // groups, k, k), F)]
            op = "Conv"
        elif kind == 1:
            k = int(rng.integers(1, 5))
            attrs = {"kernel_shape": [k, k], "strides": [int(s) for s in rng.integers(1, 4, 2)],
                     "pads": [int(p) for p in rng.integers(0, k, 4)]}
            inputs, op = [((1, 3, int(rng.integers(5, 30)), int(rng.integers(5, 30))), F)], str(rng.choice(["MaxPool", "AveragePool"]))
        else:
            shape = tuple(int(d) for d in rng.integers(1, 5, int(rng.integers(1, 5))))
            other = tuple(1 if rng.random() < 0.4 else d for d in shape[int(rng.integers(len(shape))):])
            inputs, attrs, op = [(shape, F), (other, F)], {}, str(rng.choice(["Add", "Mul", "Sub", "Div"]))
        ours = output_shapes(op, inputs, decoded(attrs), 1)
        if ours is not None:
            answered += 1
            assert ours == onnx_outputs(op, inputs, attrs), (op, inputs, attrs)
    assert answered >= 120

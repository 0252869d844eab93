"""Small requests built to cost a lot: each case of the bounded-cost issue, as bytes a client could send."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FLOAT, INT64 = TensorProto.FLOAT, TensorProto.INT64


def _model(nodes, inputs, outputs, initializers=(), opset: int = 17, extra_domains: bool = True) -> bytes:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("custom.bomb", 1)] if extra_domains else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model.SerializeToString()


def _ints(name: str, values) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def _with_custom(first: onnx.NodeProto, initializers) -> bytes:
    """``first`` feeds a custom-domain op whose output shape cannot be inferred: the folding pass is tempted."""
    x = helper.make_tensor_value_info("x", FLOAT, ["batch", 4])
    custom = helper.make_node("Mystery", ["x", "big"], ["y"], domain="custom.bomb", name="mystery")
    return _model([first, custom], [x], [helper.make_tensor_value_info("y", FLOAT, None)], initializers)


def constant_of_shape_bomb(side: int = 16000) -> bytes:
    return _with_custom(helper.make_node("ConstantOfShape", ["shape"], ["big"], name="cos"), [_ints("shape", [side, side])])


def expand_bomb(side: int = 16000) -> bytes:
    return _with_custom(helper.make_node("Expand", ["one", "shape"], ["big"], name="expand"),
                        [_ints("one", [1]), _ints("shape", [side, side])])


def range_bomb(n: int = 250_000_000) -> bytes:
    return _with_custom(helper.make_node("Range", ["start", "limit", "delta"], ["big"], name="range"),
                        [_ints("start", 0), _ints("limit", n), _ints("delta", 1)])


def one_hot_repeats(depth: int = 10**9) -> bytes:
    """torch's ``x.repeat(n, 1)`` with a computed ``n`` as GC ViT exports it (OneHot → Reshape → Cast → Tile
    repeats), here with a OneHot of ``depth``: onnx's data propagation once allocated 8 GB for 10⁹."""
    x = helper.make_tensor_value_info("x", FLOAT, ["batch", 4])
    nodes = [helper.make_node("OneHot", ["index", "depth", "values"], ["hot"], axis=-1),
             helper.make_node("Reshape", ["hot", "length"], ["repeats"]),
             helper.make_node("Cast", ["repeats"], ["repeats64"], to=onnx.TensorProto.INT64),
             helper.make_node("Tile", ["x", "repeats64"], ["y"])]
    return _model(nodes, [x], [helper.make_tensor_value_info("y", FLOAT, None)],
                  [_ints("index", [0]), _ints("depth", depth), _ints("values", [1, 3]), _ints("length", [depth])],
                  extra_domains=False)


def many_constants(n: int = 19_999) -> bytes:
    x = helper.make_tensor_value_info("x", FLOAT, ["batch", 4])
    nodes = [helper.make_node("Constant", [], [f"c{i}"], value=helper.make_tensor(f"t{i}", INT64, [1], [i]))
             for i in range(n)]
    nodes.append(helper.make_node("Relu", ["x"], ["y"]))
    return _model(nodes, [x], [helper.make_tensor_value_info("y", FLOAT, None)], extra_domains=False)


def wide_node(inputs: int = 300_000) -> bytes:
    """Two operators, one with ``inputs`` inputs (a Sum over the same tensor)."""
    x = helper.make_tensor_value_info("x", FLOAT, ["batch", 4])
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Sum", ["r"] * inputs, ["y"])]
    return _model(nodes, [x], [helper.make_tensor_value_info("y", FLOAT, None)], extra_domains=False)


def dense_reads(n: int = 445) -> bytes:
    """``n`` outputs, each the sum of a Concat of all those before it: ~n²/2 tensors between operators, every
    Concat of another width, so the inference plan has nothing to merge (n = 445: 99,200 operator inputs)."""
    x = helper.make_tensor_value_info("x", FLOAT, ["batch", 1])
    nodes, outs = [helper.make_node("Relu", ["x"], ["o0"])], ["o0"]
    for i in range(1, n):
        nodes.append(helper.make_node("Concat", list(outs), [f"c{i}"], axis=1))
        nodes.append(helper.make_node("ReduceSum", [f"c{i}"], [f"o{i}"], keepdims=1))
        outs.append(f"o{i}")
    return _model(nodes, [x], [helper.make_tensor_value_info(outs[-1], FLOAT, None)], extra_domains=False)


def deep_chain(n: int = 19_999) -> bytes:
    """The most operators the default limit allows: a chain of Relu."""
    x = helper.make_tensor_value_info("t0", FLOAT, ["batch", 8])
    nodes = [helper.make_node("Relu", [f"t{i}"], [f"t{i + 1}"], name=f"r{i}") for i in range(n)]
    return _model(nodes, [x], [helper.make_tensor_value_info(f"t{n}", FLOAT, None)], extra_domains=False)


def int_initializer(n_bytes: int = 2**20, seed: int = 0) -> bytes:
    """A model whose only weight is an integer tensor (integers are kept when stripping: they can be shapes)."""
    x = helper.make_tensor_value_info("x", FLOAT, ["batch", 4])
    values = np.random.default_rng(seed).integers(0, 1000, n_bytes // 8, dtype=np.int64)
    nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Identity", ["ints"], ["z"])]
    return _model(nodes, [x], [helper.make_tensor_value_info("y", FLOAT, None),
                               helper.make_tensor_value_info("z", INT64, None)],
                  [numpy_helper.from_array(values, "ints")], extra_domains=False)


def overflowing_totals() -> bytes:
    """A MatMul of two huge constants-shaped inputs: totals far beyond any real model."""
    a = helper.make_tensor_value_info("a", FLOAT, ["batch", 1 << 20, 1 << 20])
    b = helper.make_tensor_value_info("b", FLOAT, [1, 1 << 20, 1 << 20])
    nodes = [helper.make_node("MatMul", ["a", "b"], ["y"])]
    return _model(nodes, [a, b], [helper.make_tensor_value_info("y", FLOAT, None)], extra_domains=False)


def high_rank(rank: int = 27) -> bytes:
    x = helper.make_tensor_value_info("x", FLOAT, ["batch", *([2] * (rank - 1))])
    return _model([helper.make_node("Relu", ["x"], ["y"])], [x], [helper.make_tensor_value_info("y", FLOAT, None)],
                  extra_domains=False)


def huge_tensor() -> bytes:
    """Rank 4 with 2^50 elements per sample."""
    x = helper.make_tensor_value_info("x", FLOAT, ["batch", 1 << 20, 1 << 20, 1 << 10])
    return _model([helper.make_node("Relu", ["x"], ["y"])], [x], [helper.make_tensor_value_info("y", FLOAT, None)],
                  extra_domains=False)


def bad_loop() -> bytes:
    """A Loop whose body declares no inputs at all."""
    x = helper.make_tensor_value_info("x", FLOAT, ["batch", 4])
    body = helper.make_graph([helper.make_node("Identity", ["x"], ["out"])], "body", [],
                             [helper.make_tensor_value_info("out", FLOAT, None)])
    loop = helper.make_node("Loop", ["", ""], ["y"], body=body)
    return _model([loop], [x], [helper.make_tensor_value_info("y", FLOAT, None)], extra_domains=False)


def cycle() -> bytes:
    x = helper.make_tensor_value_info("x", FLOAT, ["batch", 4])
    nodes = [helper.make_node("Add", ["x", "b"], ["a"], name="first"), helper.make_node("Relu", ["a"], ["b"], name="second")]
    return _model(nodes, [x], [helper.make_tensor_value_info("b", FLOAT, None)], extra_domains=False)


def opset(version: int = 99) -> bytes:
    x = helper.make_tensor_value_info("x", FLOAT, ["batch", 4])
    return _model([helper.make_node("Relu", ["x"], ["y"])], [x], [helper.make_tensor_value_info("y", FLOAT, None)],
                  opset=version, extra_domains=False)


def with_dim(value: int) -> bytes:
    """An input whose axis 1 is fixed at ``value`` (0 or negative: malformed)."""
    x = helper.make_tensor_value_info("x", FLOAT, ["batch", value])
    return _model([helper.make_node("Relu", ["x"], ["y"])], [x], [helper.make_tensor_value_info("y", FLOAT, None)],
                  extra_domains=False)


def symbolic(name: str = "N") -> bytes:
    """Axis 1 named ``name``: the client binds it through ``dims``."""
    x = helper.make_tensor_value_info("x", FLOAT, ["batch", name])
    return _model([helper.make_node("Relu", ["x"], ["y"])], [x], [helper.make_tensor_value_info("y", FLOAT, None)],
                  extra_domains=False)


def tiny(width: int = 4) -> bytes:
    """A small, valid, distinct model (the light request sent beside a hostile one)."""
    x = helper.make_tensor_value_info("x", FLOAT, ["batch", width])
    w = numpy_helper.from_array(np.ones((width, 3), dtype=np.float32), "w")
    return _model([helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])], [x],
                  [helper.make_tensor_value_info("y", FLOAT, None)], [w], extra_domains=False)

"""The fast lane (seernet.fast_graph) builds the very graph the whole-model path builds, or declines.

The real-architecture corpus (test_real_corpus) checks the same equality on 132 timm and Hugging Face models.
"""
from __future__ import annotations

import resource

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from seernet.errors import GraphBuildError
from seernet.export import export_config
from seernet.fast_graph import OperatorMemo, fast_graph
from seernet.graph import PerfGraph, build_graph, reference_graph
from seernet.settings import DEFAULT_LIMITS
from seernet.spaces import SPACES
from seernet.spaces.nasbench201 import NasBench201Space
from seernet.strip import strip_bytes
from tests.reliability import hostile_models as H

ARRAYS = ("node_op", "node_category", "node_x", "edge_index", "edge_x", "global_x")


def assert_same(fast: PerfGraph, reference: PerfGraph) -> None:
    for name in ARRAYS:
        a, b = getattr(fast, name), getattr(reference, name)
        assert a.shape == b.shape and np.array_equal(a, b), name
    assert fast.op_types == reference.op_types and fast.node_names == reference.node_names
    assert (fast.batch_size, fast.training) == (reference.batch_size, reference.training)
    assert (fast.folded_at_load, fast.folded_bytes) == (reference.folded_at_load, reference.folded_bytes)


@pytest.fixture(scope="module")
def exports() -> dict[str, bytes]:
    models = {name: export_config(space.sample_n(1, seed=3, max_gflops=0.3)[0]) for name, space in SPACES.items()}
    for k, config in enumerate(NasBench201Space().sample_n(6, seed=5)):
        models[f"nasbench201-{k}"] = strip_bytes(export_config(config))
    return models


@pytest.mark.parametrize("batch,training", [(1, False), (3, False), (2, True)])
def test_every_space_builds_on_the_fast_lane_as_the_whole_model_path_builds_it(exports, batch, training):
    for name, data in exports.items():
        fast = build_graph(data, batch, training=training)
        assert fast.fast_lane, name
        assert_same(fast, reference_graph(data, batch, training=training))


def test_a_cold_memo_a_warm_one_and_a_tiny_one_give_the_same_graph(exports):
    """Entries are keyed by what they depend on: whatever was remembered before, or forgotten for lack of
    room, the graph is the same, and each table stays within its bound."""
    limits = DEFAULT_LIMITS
    reference = {name: reference_graph(data, 2) for name, data in exports.items()}
    warm = OperatorMemo()
    tiny = OperatorMemo(max_tokens=8, max_entries=4)
    for memo in (OperatorMemo(), warm, warm, tiny):
        for name, data in exports.items():
            model = onnx.load_from_string(data)
            built = fast_graph(model, 2, None, False, limits, _budget(), 0.0, memo=memo)
            assert built is not None, name
            assert_same(built, reference[name])
    assert len(tiny.operators) <= 4 and len(tiny.decoded) <= 4 and len(tiny.tokens) <= 8


def _budget():
    from seernet.budget import CpuBudget

    return CpuBudget(DEFAULT_LIMITS.max_build_cpu_s)


def _model(nodes, inputs, outputs, initializers=(), value_info=(), domains=()) -> bytes:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers), value_info=list(value_info))
    opsets = [helper.make_opsetid("", 17), *(helper.make_opsetid(d, 1) for d in domains)]
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


X = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 8, 8])
Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)


@pytest.mark.parametrize("case", ["declared_shapes", "custom_domain", "subgraph"])
def test_what_the_lane_cannot_vouch_for_goes_the_whole_model_way(case):
    """Declared intermediate shapes (onnx checks them), custom operators (their outputs are declared, not
    inferred) and sub-graphs take the whole-model path and get its result."""
    relu = helper.make_node("Relu", ["x"], ["r"])
    if case == "declared_shapes":
        data = _model([relu, helper.make_node("Sigmoid", ["r"], ["y"])], [X], [Y],
                      value_info=[helper.make_tensor_value_info("r", TensorProto.FLOAT, ["batch", 4, 8, 8])])
    elif case == "custom_domain":
        custom = helper.make_node("Fancy", ["r"], ["y"], domain="com.example")
        declared = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, 8, 8])
        data = _model([relu, custom], [X], [declared], domains=["com.example"])
    else:
        branch = helper.make_graph([helper.make_node("Relu", ["r"], ["b"])], "branch", [],
                                   [helper.make_tensor_value_info("b", TensorProto.FLOAT, None)])
        flag = helper.make_tensor("flag", TensorProto.BOOL, [], [True])
        node = helper.make_node("If", ["flag"], ["y"], then_branch=branch, else_branch=branch)
        data = _model([relu, node], [X], [Y], initializers=[flag])
    built = build_graph(data, 2)
    assert not built.fast_lane
    assert_same(built, reference_graph(data, 2))


def test_an_output_declared_against_what_it_computes_is_refused_as_the_whole_model_path_refuses_it():
    """Declared ("batch", "n") but computed (n, batch): bound to batch 2, n 3, onnx's strict inference refuses
    it, so the lane must not answer; where batch equals n both agree and the lane builds it."""
    symbols = ["batch", "n"]
    data = _model([helper.make_node("Transpose", ["x"], ["y"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, symbols)],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, symbols)])
    with pytest.raises(GraphBuildError) as refused:
        reference_graph(data, 2, dims={"n": 3})
    with pytest.raises(GraphBuildError) as also_refused:
        build_graph(data, 2, dims={"n": 3})
    assert str(also_refused.value) == str(refused.value)
    assert build_graph(data, 3, dims={"n": 3}).fast_lane


def test_a_constant_whose_data_does_not_fit_its_dims_is_refused_in_one_line():
    """3 int64 values declared, 2 bytes given: refused as the whole-model path refuses it, never a crash."""
    shape = TensorProto(name="c", data_type=TensorProto.INT64, dims=[3], raw_data=b"\x01\x02")
    data = _model([helper.make_node("Constant", [], ["c"], value=shape), helper.make_node("Reshape", ["x", "c"], ["y"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])], [Y])
    with pytest.raises(GraphBuildError) as refused:
        reference_graph(data, 2)
    with pytest.raises(GraphBuildError) as also_refused:
        build_graph(data, 2)
    assert str(also_refused.value) == str(refused.value)


def test_a_read_before_its_write_is_refused_by_the_whole_model_path():
    data = _model([helper.make_node("Relu", ["later"], ["y"]), helper.make_node("Relu", ["x"], ["later"])], [X], [Y])
    with pytest.raises(GraphBuildError, match="topological"):
        build_graph(data, 1)


def test_shape_arithmetic_is_folded_on_the_lane():
    """Shape → Gather → Unsqueeze → Concat → Reshape (torch's flatten by ``x.shape[0]``): the lane folds the
    values, so the Reshape's output shape is known, and the graph is the whole-model path's."""
    const = helper.make_tensor("minus_one", TensorProto.INT64, [1], [-1])
    zero = helper.make_tensor("zero", TensorProto.INT64, [], [0])
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "zero"], ["b"]),
             helper.make_node("Unsqueeze", ["b", "axes"], ["b1"]),
             helper.make_node("Concat", ["b1", "minus_one"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [0])
    data = _model(nodes, [X], [Y], initializers=[const, zero, axes])
    for batch in (1, 5):
        built = build_graph(data, batch)
        assert built.fast_lane and built.global_value("output_bytes") == batch * 4 * 8 * 8 * 4
        assert_same(built, reference_graph(data, batch))



def test_shape_arithmetic_through_one_hot_is_folded_and_bounded():
    """OneHot is folded like the rest of shape arithmetic (GC ViT builds on both paths), and a depth of 10⁹ is
    refused without allocating it (onnx's data propagation once took 8 GB for it)."""
    data = H.one_hot_repeats(2)  # repeats [3, 1]: y is (3·batch, 4)
    built = build_graph(data, 2)
    assert built.fast_lane and built.global_value("output_bytes") == 3 * 2 * 4 * 4
    assert_same(built, reference_graph(data, 2))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(GraphBuildError):
        build_graph(H.one_hot_repeats(10**9), 2)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KiB

"""Operators on weights alone are computed at load: inference graphs leave them out, training graphs keep them."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from onnx import helper

from seernet.graph import NODE_FEATURES, build_graph, reference_graph
from tests.onnx_builders import chain, ints, weight

_PARAMS, _WEIGHT_BYTES = NODE_FEATURES.index("params"), NODE_FEATURES.index("bytes_read_weight")


def _both_lanes(model, training: bool = False):
    """The graph of each builder; the fast lane must take the model and agree with the whole-model path."""
    data = model.SerializeToString()
    fast, whole = build_graph(data, batch_size=2, training=training), reference_graph(data, 2, training)
    assert fast.fast_lane
    assert fast.op_types == whole.op_types and fast.folded_at_load == whole.folded_at_load
    assert fast.folded_bytes == whole.folded_bytes
    np.testing.assert_allclose(fast.node_x, whole.node_x)
    np.testing.assert_allclose(fast.global_x, whole.global_x)
    np.testing.assert_array_equal(fast.edge_index, whole.edge_index)
    return fast


def _transposed_weight_model():
    """y = relu(x @ Transpose(W)): what a Linear exported with ``do_constant_folding=False`` looks like."""
    nodes = [helper.make_node("Transpose", ["W"], ["Wt"], name="t", perm=[1, 0]),
             helper.make_node("MatMul", ["x", "Wt"], ["h"], name="mm"),
             helper.make_node("Relu", ["h"], ["y"], name="relu")]
    return chain(nodes, {"x": (2, 16)}, ["y"], [weight("W", (32, 16))])


def test_an_inference_graph_leaves_out_what_the_runtime_computes_at_load():
    graph = _both_lanes(_transposed_weight_model())
    assert graph.op_types == ["MatMul", "Relu"] and graph.summary()["folded_at_load"] == 1
    assert graph.folded_bytes == 4 * 32 * 16  # the transposed copy onnxruntime makes while it loads
    matmul = graph.node_x[0]
    assert matmul[_PARAMS] == 32 * 16  # the transposed weight is a weight, counted as the parameters it came from
    assert matmul[_WEIGHT_BYTES] == 4 * 32 * 16
    assert graph.global_value("params_sum") == 32 * 16


def test_a_training_graph_keeps_them_because_every_step_recomputes_them():
    graph = _both_lanes(_transposed_weight_model(), training=True)
    assert graph.op_types == ["Transpose", "MatMul", "Relu"] and graph.folded_at_load == graph.folded_bytes == 0
    assert graph.global_value("params_sum") == 32 * 16


def test_a_weight_read_directly_and_through_a_folded_operator_is_counted_once():
    """Tied embeddings: a Gather reads W, the output head reads Transpose(W)."""
    nodes = [helper.make_node("Gather", ["W", "ids"], ["e"], name="embed"),
             helper.make_node("Transpose", ["W"], ["Wt"], name="t", perm=[1, 0]),
             helper.make_node("MatMul", ["e", "Wt"], ["y"], name="head")]
    model = chain(nodes, {}, ["y"], [weight("W", (50, 8))])
    ids = helper.make_tensor_value_info("ids", 7, ["batch", 4])
    model.graph.input.append(ids)
    graph = _both_lanes(model)
    assert graph.op_types == ["Gather", "MatMul"]
    assert graph.global_value("params_sum") == 50 * 8


def test_weight_standardisation_folds_and_its_parameters_stay():
    """NF-Net / BiT convolutions standardise their weight in the graph (Reshape → BatchNormalization → Reshape)."""
    nodes = [helper.make_node("Reshape", ["W", "flat"], ["Wf"], name="r1"),
             helper.make_node("BatchNormalization", ["Wf", "g", "b", "m", "v"], ["Wn"], name="std"),
             helper.make_node("Reshape", ["Wn", "shape"], ["Ws"], name="r2"),
             helper.make_node("Conv", ["x", "Ws"], ["y"], name="conv", pads=[1, 1, 1, 1])]
    inits = [weight("W", (8, 4, 3, 3)), ints("flat", [1, 8, 36]), weight("g", (8,), 1), weight("b", (8,), 2),
             weight("m", (8,), 3), weight("v", (8,), 4), ints("shape", [8, 4, 3, 3])]
    graph = _both_lanes(chain(nodes, {"x": (2, 4, 10, 10)}, ["y"], inits))
    assert graph.op_types == ["Conv"]
    assert graph.global_value("params_sum") == 8 * 4 * 3 * 3 + 8 + 8  # weight and the affine pair, not the stats
    assert graph.folded_bytes == 3 * 4 * 8 * 4 * 3 * 3  # three weight-sized tensors computed while loading


def test_random_operators_and_graphs_of_nothing_but_weights_are_not_folded():
    noise = chain([helper.make_node("RandomNormalLike", ["W"], ["n"], name="noise"),
                   helper.make_node("Add", ["x", "n"], ["y"], name="add")], {"x": (2, 6)}, ["y"],
                  [weight("W", (2, 6))])
    assert reference_graph(noise.SerializeToString(), 2).op_types == ["RandomNormalLike", "Add"]
    only_weights = chain([helper.make_node("Relu", ["W"], ["y"], name="relu")], {}, ["y"], [weight("W", (4, 4))])
    assert reference_graph(only_weights.SerializeToString(), 1).op_types == ["Relu"]


def test_a_torch_model_gives_one_inference_graph_however_it_was_exported():
    """With and without the exporter's own constant folding: onnxruntime runs both the same way."""
    torch = pytest.importorskip("torch")

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(16, 32)
            self.out = torch.nn.Linear(32, 8)

        def forward(self, x):
            return self.out(torch.relu(self.proj(x)))

    torch.manual_seed(0)
    module = Block().eval()
    graphs = {}
    for folding in (True, False):
        buffer = io.BytesIO()
        torch.onnx.export(module, (torch.randn(2, 5, 16),), buffer, input_names=["x"], dynamo=False,
                          dynamic_axes={"x": {0: "batch"}}, do_constant_folding=folding, opset_version=17)
        graphs[folding] = (build_graph(buffer.getvalue(), batch_size=2),
                           build_graph(buffer.getvalue(), batch_size=2, training=True))
    (folded, folded_train), (unfolded, unfolded_train) = graphs[True], graphs[False]
    assert unfolded_train.num_nodes > folded_train.num_nodes  # the export left weight operators in
    assert unfolded.op_types == folded.op_types
    np.testing.assert_allclose(unfolded.global_x, folded.global_x)
    assert folded.global_value("params_sum") == sum(p.numel() for p in module.parameters())


def test_the_cli_says_how_many_operators_the_runtime_computes_at_load(tmp_path):
    path = tmp_path / "linear.onnx"
    path.write_bytes(_transposed_weight_model().SerializeToString())
    run = [sys.executable, "-m", "perfseer.cli", "graph", str(path)]
    shown = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "2 operators" in shown.stdout and "1 more operators read only weights" in shown.stdout
    summary = json.loads(subprocess.run([*run, "--json"], capture_output=True, text=True, timeout=120).stdout)
    assert summary["nodes"] == 2 and summary["folded_at_load"] == 1
    assert summary["folded_at_load_mb"] == pytest.approx(4 * 32 * 16 / 1e6)

"""Hand-computed FLOPs, MACs, parameters and bytes for one model per operator."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from seernet.graph import NODE_FEATURES, build_graph
from tests.onnx_builders import chain, ints, single_op, weight


def feature(graph, name: str, node: int = 0) -> float:
    return float(graph.node_x[node, NODE_FEATURES.index(name)])


def test_conv_with_bias():
    # X 1x3x8x8, W 4x3x3x3, pad 1 → Y 1x4x8x8: MACs = 4·64 · 3·9
    model = single_op("Conv", {"x": (1, 3, 8, 8)}, initializers=[weight("w", (4, 3, 3, 3)), weight("b", (4,))],
                      pads=[1, 1, 1, 1], kernel_shape=[3, 3])
    g = build_graph(model)
    assert feature(g, "macs") == 4 * 64 * 3 * 9
    assert feature(g, "flops") == 2 * 4 * 64 * 27 + 4 * 64
    assert feature(g, "params") == 4 * 27 + 4
    assert feature(g, "bytes_read_act") == 3 * 64 * 4
    assert feature(g, "bytes_read_weight") == (108 + 4) * 4
    assert feature(g, "bytes_written") == 4 * 64 * 4
    assert (feature(g, "kernel_h"), feature(g, "stride_h"), feature(g, "in_channels"), feature(g, "out_channels")) == (3, 1, 3, 4)


def test_grouped_strided_conv():
    # X 1x4x8x8, W 8x2x3x3, group 2, stride 2, pad 1 → Y 1x8x4x4
    model = single_op("Conv", {"x": (1, 4, 8, 8)}, initializers=[weight("w", (8, 2, 3, 3))], group=2,
                      strides=[2, 2], pads=[1, 1, 1, 1])
    g = build_graph(model, batch_size=3)
    assert feature(g, "macs") == 3 * 8 * 16 * 2 * 9
    assert feature(g, "groups") == 2 and feature(g, "stride_w") == 2 and feature(g, "depthwise") == 0


def test_depthwise_conv():
    model = single_op("Conv", {"x": (1, 8, 8, 8)}, initializers=[weight("w", (8, 1, 3, 3))], group=8, pads=[1, 1, 1, 1])
    g = build_graph(model)
    assert feature(g, "macs") == 8 * 64 * 9
    assert feature(g, "depthwise") == 1


def test_dilated_conv():
    # dilation 2 on 10x10 with a 3x3 kernel and no padding → 6x6
    model = single_op("Conv", {"x": (1, 2, 10, 10)}, initializers=[weight("w", (3, 2, 3, 3))], dilations=[2, 2])
    g = build_graph(model)
    assert feature(g, "macs") == 3 * 36 * 2 * 9
    assert feature(g, "dilation") == 2


def test_conv_transpose():
    # X 1x4x4x4, W 4x2x3x3, stride 2 → Y 1x2x9x9; MACs = in_numel · C_out/groups · k²
    model = single_op("ConvTranspose", {"x": (1, 4, 4, 4)}, initializers=[weight("w", (4, 2, 3, 3))], strides=[2, 2])
    g = build_graph(model)
    assert feature(g, "macs") == 64 * 2 * 9
    assert feature(g, "out_spatial") == 81


def test_gemm_with_bias():
    model = single_op("Gemm", {"a": (2, 16)}, initializers=[weight("b", (16, 8)), weight("c", (8,))])
    g = build_graph(model, batch_size=2)
    assert feature(g, "macs") == 2 * 8 * 16
    assert feature(g, "flops") == 2 * 2 * 8 * 16 + 2 * 8
    assert feature(g, "params") == 16 * 8 + 8


def test_gemm_transposed_weight():
    model = single_op("Gemm", {"a": (4, 16)}, initializers=[weight("b", (8, 16))], transB=1)
    g = build_graph(model, batch_size=4)
    assert feature(g, "macs") == 4 * 8 * 16


def test_batched_matmul_as_in_attention():
    # Q·Kᵀ: (B,4,10,16) @ (B,4,16,10) → (B,4,10,10)
    model = single_op("MatMul", {"q": (2, 4, 10, 16), "k": (2, 4, 16, 10)})
    g = build_graph(model, batch_size=2)
    assert feature(g, "macs") == 2 * 4 * 10 * 10 * 16
    assert feature(g, "params") == 0


def test_matmul_with_weight_broadcasts():
    model = single_op("MatMul", {"x": (3, 5, 16)}, initializers=[weight("w", (16, 32))])
    g = build_graph(model, batch_size=3)
    assert feature(g, "macs") == 3 * 5 * 32 * 16
    assert feature(g, "params") == 16 * 32


def test_batchnorm_counts_scale_and_bias_only():
    init = [weight("s", (4,)), weight("b", (4,), 1), weight("m", (4,), 2), np_abs(weight("v", (4,), 3))]
    model = single_op("BatchNormalization", {"x": (2, 4, 5, 5)}, initializers=init)
    g = build_graph(model, batch_size=2)
    assert feature(g, "flops") == 2 * 200 and feature(g, "macs") == 200
    assert feature(g, "params") == 8


def np_abs(tensor):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.abs(numpy_helper.to_array(tensor)), tensor.name)


def test_layernorm():
    model = single_op("LayerNormalization", {"x": (2, 3, 8)}, initializers=[weight("g", (8,)), weight("b", (8,))], axis=-1)
    g = build_graph(model, batch_size=2)
    assert feature(g, "flops") == 8 * 48
    assert feature(g, "params") == 16


def test_softmax():
    g = build_graph(single_op("Softmax", {"x": (2, 10)}, axis=-1), batch_size=2)
    assert feature(g, "flops") == 5 * 20


@pytest.mark.parametrize("op,kernel,stride,side_in,side_out", [("MaxPool", 3, 2, 9, 4), ("AveragePool", 2, 2, 8, 4)])
def test_windowed_pooling(op, kernel, stride, side_in, side_out):
    model = single_op(op, {"x": (1, 2, side_in, side_in)}, kernel_shape=[kernel, kernel], strides=[stride, stride])
    g = build_graph(model)
    assert feature(g, "flops") == 2 * side_out**2 * kernel**2
    assert feature(g, "kernel_w") == kernel


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pooling(op):
    g = build_graph(single_op(op, {"x": (1, 4, 7, 7)}))
    assert feature(g, "flops") == 4 * 49


@pytest.mark.parametrize("op", ["Add", "Mul", "Sub", "Div"])
def test_binary_elementwise(op):
    g = build_graph(single_op(op, {"a": (2, 3), "b": (2, 3)}), batch_size=2)
    assert feature(g, "flops") == 6 and feature(g, "macs") == 0


def test_relu():
    g = build_graph(single_op("Relu", {"x": (2, 3)}), batch_size=2)
    assert feature(g, "flops") == 6


@pytest.mark.parametrize("mode,macs", [("linear", 64 * 4), ("nearest", 0), ("cubic", 64 * 16)])
def test_resize(mode, macs):
    init = [weight("roi", (0,)), helper_scales()]
    model = single_op("Resize", {"x": (1, 1, 4, 4)}, initializers=init, input_names=["x", "roi", "scales"], mode=mode)
    g = build_graph(model)
    assert feature(g, "macs") == macs
    assert feature(g, "flops") == 2 * macs
    assert feature(g, "out_spatial") == 64


def helper_scales():
    from onnx import numpy_helper

    return numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "scales")


def test_data_movement_moves_bytes_without_flops():
    nodes = [
        helper.make_node("Concat", ["a", "b"], ["c"], axis=1, name="concat"),
        helper.make_node("Transpose", ["c"], ["t"], perm=[0, 2, 1], name="transpose"),
        helper.make_node("Reshape", ["t", "shape"], ["r"], name="reshape"),
        helper.make_node("Split", ["r"], ["s1", "s2"], axis=1, num_outputs=2, name="split"),
        helper.make_node("Gather", ["s1", "idx"], ["gout"], axis=1, name="gather"),
    ]
    model = chain(nodes, {"a": (1, 2, 3), "b": (1, 2, 3)}, ["gout", "s2"], [ints("shape", [0, 12]), ints("idx", [0, 2])],
                  opset=18)
    g = build_graph(model)
    assert g.op_types == ["Concat", "Transpose", "Reshape", "Split", "Gather"]
    assert np.all(g.node_x[:, NODE_FEATURES.index("flops")] == 0)
    assert feature(g, "bytes_read_act", 0) == 48 and feature(g, "bytes_written", 0) == 48
    assert feature(g, "bytes_written", 1) == 48
    assert feature(g, "bytes_written", 3) == 48  # Split: two (1, 6) halves of the reshaped (1, 12)
    assert feature(g, "bytes_written", 4) == 8
    # producer → consumer edges, each carrying its tensor's bytes
    assert g.edge_index.tolist() == [[0, 1, 2, 3], [1, 2, 3, 4]]
    assert g.edge_x[0, 0] == 48

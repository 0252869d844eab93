"""Graph structure, weight stripping, input forms, and every refusal."""
from __future__ import annotations

import builtins

import numpy as np
import onnx
import pytest
from onnx import helper

from perfseer.config import Limits
from seernet.errors import (ExternalDataError, GraphBuildError, InvalidBatchSizeError, ModelTooLargeError,
                            NotOnnxError, TooManyNodesError, UnknownDimensionError)
from seernet.export import export_config
from seernet.graph import GLOBAL_FEATURES, build_graph
from seernet.op_vocab import OP_VOCAB
from seernet.spaces import SPACES
from seernet.strip import strip_bytes, strip_weights
from tests.onnx_builders import single_op, weight


def same_graph(a, b) -> bool:
    return (np.array_equal(a.node_x, b.node_x) and np.array_equal(a.edge_x, b.edge_x)
            and np.array_equal(a.global_x, b.global_x) and np.array_equal(a.edge_index, b.edge_index)
            and np.array_equal(a.node_op, b.node_op))


@pytest.fixture(scope="module")
def space_models() -> dict[str, tuple[bytes, int, int]]:
    out = {}
    for name, space in SPACES.items():
        config = space.sample_n(1, seed=11, max_gflops=0.5)[0]
        out[name] = (export_config(config), config.batch_size, config.input_size)
    return out


def test_stripped_model_gives_the_same_graph(space_models):
    for name, (data, batch, _) in space_models.items():
        stripped = strip_bytes(data)
        assert len(stripped) < len(data) / 4 or len(data) < 50_000, name
        assert same_graph(build_graph(data, batch), build_graph(stripped, batch)), name


def test_stripper_keeps_small_integer_initializers(space_models):
    model = onnx.load_from_string(space_models["vit"][0])
    stripped = strip_weights(model)
    kept = {t.name: t for t in stripped.graph.initializer}
    for tensor in model.graph.initializer:
        if tensor.data_type == onnx.TensorProto.INT64:
            assert kept[tensor.name].SerializeToString() == tensor.SerializeToString()
        elif tensor.data_type == onnx.TensorProto.FLOAT and np.prod(tensor.dims) * 4 >= 1024:
            assert not kept[tensor.name].raw_data and list(kept[tensor.name].dims) == list(tensor.dims)


def test_path_bytes_and_proto_give_the_same_graph(space_models, tmp_path):
    data, batch, _ = space_models["cnn"]
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    g_bytes = build_graph(data, batch)
    assert same_graph(g_bytes, build_graph(path, batch))
    assert same_graph(g_bytes, build_graph(str(path), batch))
    assert same_graph(g_bytes, build_graph(onnx.load_from_string(data), batch))


def test_batch_size_scales_flops_and_is_a_global_feature(space_models):
    data, _, resolution = space_models["nasbench201"]
    g1, g8 = build_graph(data, 1), build_graph(data, 8)
    assert g8.global_value("flops_sum") == pytest.approx(8 * g1.global_value("flops_sum"))
    assert g8.global_value("params_sum") == g1.global_value("params_sum")
    assert g8.global_value("batch_size") == 8 and g1.global_value("input_resolution") == resolution
    assert build_graph(data, 1, training=True).global_value("training") == 1.0
    assert len(g1.global_x) == len(GLOBAL_FEATURES)
    assert g1.num_edges >= g1.num_nodes - 1


def test_unknown_and_custom_ops_map_to_other():
    node = helper.make_node("FancyOp", ["x"], ["y"], domain="com.example", name="custom")
    relu = helper.make_node("Relu", ["y"], ["z"], name="relu")
    graph = helper.make_graph([node, relu], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["b", 4])],
                              [helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    # onnx cannot infer a custom op's output: without a declared shape that is a clear error…
    with pytest.raises(UnknownDimensionError, match="'y'"):
        build_graph(model)
    # …and declared with the input's batch symbol, the graph builds
    model.graph.value_info.append(helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["b", 4]))
    g = build_graph(model, batch_size=3)
    assert g.edge_x[0, 0] == 3 * 4 * 4
    assert OP_VOCAB[g.node_op[0]] == "other" and OP_VOCAB[g.node_op[1]] == "Relu"


@pytest.mark.parametrize("payload", [b"", b"not an onnx model at all", bytes(range(256)) * 4, b"\x08\x07"])
def test_bytes_that_are_not_onnx_are_refused(payload):
    with pytest.raises(NotOnnxError):
        build_graph(payload)


def _external_model(location: str) -> onnx.ModelProto:
    model = single_op("MatMul", {"x": (1, 16)}, initializers=[weight("w", (16, 16))])
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    return model


def test_external_data_is_refused_and_never_opened(tmp_path, monkeypatch):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\0" * 1024)
    opened: list[str] = []
    real_open = builtins.open

    def spy(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    data = _external_model(str(secret)).SerializeToString()
    with pytest.raises(ExternalDataError, match="external"):
        build_graph(data)
    model_path = tmp_path / "m.onnx"
    model_path.write_bytes(_external_model("secret.bin").SerializeToString())
    with pytest.raises(ExternalDataError):
        build_graph(model_path)
    assert not any("secret" in path for path in opened)


def test_model_over_byte_limit_is_refused(space_models, tmp_path):
    data, _, _ = space_models["mlp"]
    limits = Limits(max_model_bytes=len(data) - 1, max_nodes=10_000, max_batch_size=64)
    with pytest.raises(ModelTooLargeError, match="limit"):
        build_graph(data, limits=limits)
    path = tmp_path / "big.onnx"
    path.write_bytes(data)
    with pytest.raises(ModelTooLargeError):
        build_graph(path, limits=limits)
    build_graph(data, limits=Limits(max_model_bytes=len(data), max_nodes=10_000, max_batch_size=64))


def test_a_local_file_over_the_byte_limit_is_stripped_first_as_the_client_strips_it(space_models, tmp_path):
    """`perfseer predict` / `graph` on the user's own file: over the request limit, the weights are stripped
    locally (the same graph as the stripped bytes'); a file within it is read as is; one that is not ONNX, or is
    still over the limit stripped, is refused with the reason."""
    from seernet.loader import local_model

    data, _, _ = space_models["cnn"]
    path = tmp_path / "model.onnx"
    path.write_bytes(data)
    stripped = strip_bytes(data)
    limits = Limits(max_model_bytes=len(stripped) + 1, max_nodes=10_000, max_batch_size=64)
    assert len(data) > limits.max_model_bytes and local_model(path, limits) == stripped
    assert same_graph(build_graph(local_model(path, limits), limits=limits), build_graph(stripped, limits=limits))
    assert local_model(path) == path  # within the default limit: the file itself
    with pytest.raises(ModelTooLargeError):
        build_graph(local_model(path, Limits(max_model_bytes=100, max_nodes=10_000, max_batch_size=64)),
                    limits=Limits(max_model_bytes=100, max_nodes=10_000, max_batch_size=64))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\xff" * 4096)
    with pytest.raises(NotOnnxError, match="junk.onnx is not an ONNX model"):
        local_model(junk, Limits(max_model_bytes=100, max_nodes=10_000, max_batch_size=64))


def test_model_over_node_limit_is_refused(space_models):
    data, _, _ = space_models["cnn"]
    nodes = len(onnx.load_from_string(data).graph.node)
    with pytest.raises(TooManyNodesError, match=str(nodes)):
        build_graph(data, limits=Limits(max_model_bytes=2**30, max_nodes=nodes - 1, max_batch_size=64))


@pytest.mark.parametrize("batch", [0, -1, 65, 2.5, True])
def test_bad_batch_sizes_are_refused(batch):
    model = single_op("Relu", {"x": (1, 4)})
    with pytest.raises(InvalidBatchSizeError):
        build_graph(model, batch_size=batch, limits=Limits(max_model_bytes=2**20, max_nodes=100, max_batch_size=64))


def test_symbolic_non_batch_dimension_needs_a_value():
    model = single_op("Relu", {"x": (1, 4)})
    dim = model.graph.input[0].type.tensor_type.shape.dim[1]
    dim.dim_param = "seq"
    with pytest.raises(UnknownDimensionError, match="'x'.*seq"):
        build_graph(model)
    assert build_graph(model, dims={"seq": 7}).global_value("input_bytes") == 28


def test_inconsistent_model_gives_a_clear_error():
    model = single_op("MatMul", {"x": (1, 16)}, initializers=[weight("w", (8, 4))])
    with pytest.raises(GraphBuildError, match="shape inference failed"):
        build_graph(model)


def test_torch_expand_with_minus_one_is_followed(space_models):
    """ViT's ``cls_token.expand(B, -1, -1)`` needs the shape-subgraph folding."""
    data, _, _ = space_models["vit"]
    g = build_graph(strip_bytes(data), 5)
    assert g.global_value("batch_size") == 5 and "Expand" in g.op_types


def test_rows_remembered_across_graphs_give_the_graph_a_fresh_process_builds(space_models, monkeypatch):
    """Operator rows are kept across builds by signature (seernet.graph.RowMemo): every space's graph built
    after all the others equals the one built with nothing remembered, and the memo stays within its bound."""
    import seernet.graph as graph_module

    warm = {name: build_graph(data, batch) for name, (data, batch, _) in space_models.items()}
    for name, (data, batch, _) in space_models.items():
        monkeypatch.setattr(graph_module, "_ROWS", graph_module.RowMemo())
        assert same_graph(warm[name], build_graph(data, batch)), name
    small = graph_module.RowMemo(max_entries=3)
    monkeypatch.setattr(graph_module, "_ROWS", small)
    data, batch, _ = space_models["cnn"]
    assert same_graph(warm["cnn"], build_graph(data, batch)) and len(small._rows) <= 3

"""Hugging Face configs as ONNX for the GPU model, and models saved with external data (over 2 GB)."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from seernet.graph import build_graph
from seernet.strip import strip_file


def test_a_model_saved_with_external_data_strips_to_the_same_graph(tmp_path):
    """torch writes models over protobuf's 2 GB limit with external data; stripping never reads the floats."""
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 256])
    w = numpy_helper.from_array(np.ones((256, 512), dtype=np.float32), "w")
    shape = numpy_helper.from_array(np.arange(4096, dtype=np.int64), "ints")  # large enough to go external
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Identity", ["ints"],
                                                                                              ["z"])], "g", [x],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("z", onnx.TensorProto.INT64, None)], [w, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    embedded = model.SerializeToString()  # save_model below turns the model's tensors into external references
    path = tmp_path / "big.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="big.data",
                    size_threshold=1024)
    stripped = strip_file(path)
    assert len(stripped) < 40_000  # the 512 KiB of float weights are gone; the 32 KiB of integers stay
    kept = {t.name: t for t in onnx.ModelProto.FromString(stripped).graph.initializer}
    assert numpy_helper.to_array(kept["ints"])[-1] == 4095  # integers are read back: they may be shapes
    assert build_graph(stripped, batch_size=4).summary() | {"build_ms": 0} == \
        build_graph(embedded, batch_size=4).summary() | {"build_ms": 0}


def test_a_hugging_face_config_exports_and_scales_with_depth(tmp_path):
    pytest.importorskip("transformers")
    from seernet.gpu.hf_workloads import export_hf, layer_count

    config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 64, "n_head": 2, "n_layer": 12,
              "n_positions": 128, "vocab_size": 500}
    path = tmp_path / "tiny_gpt2.json"
    path.write_text(json.dumps(config))
    assert layer_count(config) == 12
    one, two = (build_graph(export_hf(path, k, root=tmp_path), batch_size=2, dims={"seq": 32}) for k in (1, 2))
    assert two.num_nodes > one.num_nodes and two.global_value("flops_sum") > one.global_value("flops_sum")
    assert (tmp_path / "tiny_gpt2-L1.onnx").exists()  # cached by name and depth

"""Per-operator profiles: onnxruntime's kernels mapped back to the ONNX nodes they execute."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from profiler_worker.op_profile import RUNTIME_INSERTED, RuntimeNode, map_kernels, profile_operators


def conv_relu_add(batch: int = 1) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 32, 32])
    w = numpy_helper.from_array(np.random.default_rng(0).random((8, 3, 3, 3), dtype=np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Add", ["r", "r"], ["y"], name="add")]
    graph = helper.make_graph(nodes, "g", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_a_fused_kernel_covers_its_nodes_and_runtime_kernels_are_unmapped():
    covered, uncovered = map_kernels(conv_relu_add(), ["r_nchwc", "add", "ReorderOutput"])
    assert covered == {"r_nchwc": ["conv", "relu"], "add": ["add"], "ReorderOutput": []}
    assert uncovered == []


def test_kernels_named_after_a_fusion_or_a_rewritten_tensor_map_to_their_node():
    covered, _ = map_kernels(conv_relu_add(), ["relu/QuickGeluFusion/", "add/GatherSliceToSplitFusion"])
    assert covered == {"relu/QuickGeluFusion/": ["conv", "relu"], "add/GatherSliceToSplitFusion": ["add"]}
    covered, _ = map_kernels(conv_relu_add(), ["c_bn_nchwc", "r_mul_nchwc"])
    assert covered == {"c_bn_nchwc": ["conv"], "r_mul_nchwc": ["relu"]}


def test_unfused_kernels_map_one_to_one_and_leftovers_are_reported():
    covered, uncovered = map_kernels(conv_relu_add(), ["conv", "relu"])
    assert covered == {"conv": ["conv"], "relu": ["relu"]} and uncovered == ["add"]


def conv_gelu_conv(channels: int = 32) -> onnx.ModelProto:
    """Two 1×1 convolutions with an exported GELU (Div, Erf, Add, Mul, Mul) between them and a layer scale
    after the second: onnxruntime runs the GELU as one kernel on the blocked tensors between the two."""
    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 16, 16])
    inits = [numpy_helper.from_array(rng.random((channels, channels, 1, 1), dtype=np.float32), w) for w in ("w1", "w2")]
    inits += [numpy_helper.from_array(np.array(v, dtype=np.float32), n)
              for n, v in (("sqrt2", 1.4142135), ("one", 1.0), ("half", 0.5))]
    inits.append(numpy_helper.from_array(rng.random((channels, 1, 1), dtype=np.float32), "scale"))
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1"),
             helper.make_node("Div", ["c1", "sqrt2"], ["d"], name="div"),
             helper.make_node("Erf", ["d"], ["e"], name="erf"),
             helper.make_node("Add", ["e", "one"], ["a"], name="add"),
             helper.make_node("Mul", ["c1", "a"], ["m"], name="mul"),
             helper.make_node("Mul", ["m", "half"], ["g"], name="mul_1"),
             helper.make_node("Conv", ["g", "w2"], ["c2"], name="conv2"),
             helper.make_node("Mul", ["c2", "scale"], ["y"], name="layer_scale")]
    graph = helper.make_graph(nodes, "g", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_a_kernel_between_layout_reorders_maps_to_the_nodes_it_fused():
    # onnxruntime's graph: the GELU reads and writes only tensors it made; the second convolution (with the
    # layer scale folded in) is named after the scale's output, so by name it would claim the GELU's nodes
    runtime = {"ReorderInput": RuntimeNode("ReorderInput", ["x"], ["r0"]),
               "c1_nchwc": RuntimeNode("Conv", ["r0", "w1"], ["r1"]),
               "Gelu": RuntimeNode("Gelu", ["r1"], ["r2"]),
               "y_nchwc": RuntimeNode("Conv", ["r2", "w2", "scale"], ["r3"]),
               "ReorderOutput": RuntimeNode("ReorderOutput", ["r3"], ["y"])}
    covered, uncovered = map_kernels(conv_gelu_conv(), list(runtime), runtime)
    assert covered["Gelu"] == ["div", "erf", "add", "mul", "mul_1"]
    assert covered["y_nchwc"] == ["conv2", "layer_scale"] and covered["c1_nchwc"] == ["conv1"]
    assert covered["ReorderInput"] == covered["ReorderOutput"] == [] and uncovered == []
    # without the optimized graph the GELU cannot be placed: it stays unmapped, its nodes go to the convolution
    covered, _ = map_kernels(conv_gelu_conv(), list(runtime))
    assert covered["Gelu"] == [] and "erf" in covered["y_nchwc"]


def test_in_a_real_session_only_layout_reorders_stay_unmapped():
    def options():
        o = ort.SessionOptions()
        o.intra_op_num_threads = 1
        o.log_severity_level = 3
        return o

    profile = profile_operators(conv_gelu_conv().SerializeToString(), options, ["CPUExecutionProvider"],
                                {"x": np.ones((1, 32, 16, 16), dtype=np.float32)}, repeats=2)
    unmapped = [k.op_type for k in profile.kernels if not k.nodes]
    assert set(unmapped) <= set(RUNTIME_INSERTED), unmapped
    assert {"div", "erf", "mul_1"} <= {n for k in profile.kernels for n in k.nodes}


def test_profile_of_a_real_session(tmp_path):
    model = conv_relu_add().SerializeToString()

    def options():
        o = ort.SessionOptions()
        o.intra_op_num_threads = 1
        o.log_severity_level = 3
        return o

    profile = profile_operators(model, options, ["CPUExecutionProvider"],
                                {"x": np.ones((1, 3, 32, 32), dtype=np.float32)}, repeats=5)
    assert profile.end_to_end_ms > 0 and 0.2 < profile.kernel_share <= 1.0
    nodes = {n for k in profile.kernels for n in k.nodes}
    assert nodes | set(profile.uncovered) == {"conv", "relu", "add"}
    assert all(k.median_ms >= 0 for k in profile.kernels) and profile.to_dict()["kernels"][0]["provider"]


def test_a_measured_job_carries_its_operator_profile_into_the_dataset(tmp_path):
    from profiler_worker.job import ProfileJob, ProfileResult
    from profiler_worker.measure import measure_job
    from profiler_worker.store import DatasetStore
    from tests.profiler_worker.test_profiler import TINY_MLP, fast_settings

    result = measure_job(ProfileJob.for_config(TINY_MLP), fast_settings(modes=("infer",)))
    assert result.status == "ok", result.reason
    profile = result.operators
    assert profile["kernels"] and 0 < profile["kernel_share"] <= 1.0 and result.settings["op_profile_repeats"] > 0
    gemms = [k for k in profile["kernels"] if "Gemm" in k["op_type"] or "MatMul" in k["op_type"]]
    assert gemms and all(k["nodes"] for k in gemms)  # the layers' kernels map to their ONNX nodes
    again = ProfileResult.from_json(result.to_json())  # through the queue
    store = DatasetStore(tmp_path / "d.sqlite")
    assert store.add(again) and not store.add(again)  # exactly once, profile included
    stored = store.operator_profile(result.job_id)
    assert {k["kernel"] for k in stored} == {k["kernel"] for k in profile["kernels"]}
    assert all(a["median_ms"] >= b["median_ms"] for a, b in zip(stored, stored[1:])) and stored[0]["nodes_json"]
    off = measure_job(ProfileJob.for_config(TINY_MLP), fast_settings(modes=("infer",), op_profile=False))
    assert off.operators == {} and off.settings["op_profile_repeats"] == 0


def test_a_stored_profile_labels_the_training_sample_of_its_row(tmp_path):
    """Measured → stored → read back as a training sample: its kernels label the graph's nodes by name, scaled
    so they sum to the kernels' share of the timed (not the slower profiled) end-to-end time."""
    from profiler_worker.job import ProfileJob
    from profiler_worker.measure import measure_job
    from profiler_worker.store import DatasetStore
    from seernet.data import samples_from_rows
    from tests.profiler_worker.test_profiler import TINY_MLP, fast_settings

    store = DatasetStore(tmp_path / "d.sqlite")
    result = measure_job(ProfileJob.for_config(TINY_MLP), fast_settings(modes=("infer",)))
    assert store.add(result)
    kernels = store.operator_kernels()
    assert set(kernels) == {result.job_id} and kernels[result.job_id][1] == result.operators["end_to_end_ms"]
    (sample,) = samples_from_rows(store.rows(), ("infer_time_ms",), progress=False, kernels=kernels)
    labels = sample.operators
    assert labels is not None and labels.groups >= 1 and 0 < labels.coverage <= 1.0
    measured = result.metrics["infer_time_ms"]
    scale = measured / result.operators["end_to_end_ms"]
    mapped = sum(k["median_ms"] for k in result.operators["kernels"] if k["nodes"])
    assert labels.group_ms.sum() == pytest.approx(mapped * scale, rel=1e-6)
    assert labels.group_ms.sum() <= measured * 1.0001
    (unlabelled,) = samples_from_rows(store.rows(), ("infer_time_ms",), progress=False)
    assert unlabelled.operators is None

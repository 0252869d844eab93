"""GPU cost model: specs, the ONNX-operator → kernel mapping, the model's arrays, and the CLI."""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import helper, numpy_helper

from seernet.gpu.cost_model import KernelCostModel, fit_cost_model
from seernet.gpu.kernels import Kernel, Measurement
from seernet.gpu.onnx_kernels import onnx_kernels
from seernet.gpu.specs import GpuSpec, GpuSpecError, find_spec
from tests.onnx_builders import chain, single_op, weight

REPO = Path(__file__).resolve().parents[3]
T4 = {"Device": "Tesla T4", "Dev_Mem": 15, "Mem_Bw": 320, "Num_Sm": 40, "Core_Per_SM": 64, "Freq": 1590,
      "SingleFLOPs": 8141, "L2Cache": 4}


def test_specs_parse_neusight_and_our_keys_and_name_bad_fields():
    spec = GpuSpec.from_dict(T4)
    assert spec.sms == 40 and spec.key == "Tesla_T4"
    assert GpuSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(GpuSpecError, match="missing"):
        GpuSpec.from_dict({"Device": "x"})
    with pytest.raises(GpuSpecError, match="bandwidth_gbs"):
        GpuSpec.from_dict({**T4, "Mem_Bw": -1})
    assert find_spec({"Tesla T4": spec}, "tesla_t4") is spec
    with pytest.raises(GpuSpecError, match="known"):
        find_spec({"Tesla T4": spec}, "nope")


def test_onnx_operators_map_to_measured_kernels():
    matmul = chain([helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Softmax", ["h"], ["y"])],
                   {"x": (1, 128, 64)}, ["y"], [weight("w", (64, 256))])
    kernels, batch = onnx_kernels(matmul.SerializeToString(), batch_size=4)
    gemm, softmax = (k.kernel for k in kernels)
    assert batch == 4 and gemm.family == "gemm" and gemm.dims == (1, 4 * 128, 256, 64)  # a linear layer: one GEMM
    assert gemm.flops == 2 * 4 * 128 * 256 * 64 and softmax.family == "softmax" and softmax.dims == (4 * 128, 256)
    bmm = chain([helper.make_node("MatMul", ["x", "y"], ["z"])], {"x": (1, 8, 32, 16), "y": (1, 8, 16, 64)}, ["z"])
    (batched,), _ = onnx_kernels(bmm.SerializeToString(), batch_size=2)
    assert batched.kernel.dims == (16, 32, 64, 16)
    conv = single_op("Conv", {"x": (1, 3, 32, 32)}, initializers=[weight("k", (16, 3, 3, 3))], pads=[1, 1, 1, 1])
    (conv_kernel,), _ = onnx_kernels(conv.SerializeToString(), batch_size=2)
    k = conv_kernel.kernel
    assert k.family == "conv" and k.dims == (2, 3, 16, 3, 32, 1, 1)
    reshape = single_op("Flatten", {"x": (1, 3, 4)})
    assert onnx_kernels(reshape.SerializeToString())[0] == []  # metadata only: no kernel


def test_the_graph_is_read_as_eager_pytorch_runs_it():
    """NeuSight's labels are eager PyTorch runs: a linear layer's bias is its addmm, an exported erf-GELU is one
    gelu kernel, a Transpose feeding a MatMul is a strided operand, and a scalar operand makes the unary form."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="fc"), helper.make_node("Add", ["b", "h"], ["hb"], name="bias"),
             helper.make_node("Div", ["hb", "sqrt2"], ["d"], name="div"), helper.make_node("Erf", ["d"], ["e"], name="erf"),
             helper.make_node("Add", ["e", "one"], ["e1"], name="add1"), helper.make_node("Mul", ["hb", "e1"], ["m"], name="mul"),
             helper.make_node("Mul", ["m", "half"], ["g"], name="gelu"),
             helper.make_node("Transpose", ["g"], ["gt"], perm=[0, 2, 1], name="t"),
             helper.make_node("MatMul", ["g", "gt"], ["s"], name="scores"),
             helper.make_node("Mul", ["s", "half"], ["y"], name="scale")]
    scalars = [numpy_helper.from_array(np.array(v, dtype=np.float32), n) for n, v in
               (("sqrt2", 1.4142), ("one", 1.0), ("half", 0.5))]
    model = chain(nodes, {"x": (1, 16, 32)}, ["y"], [weight("w", (32, 64)), weight("b", (64,)), *scalars])
    kernels, _ = onnx_kernels(model.SerializeToString(), batch_size=2)
    by_node = {k.node: k for k in kernels}
    assert list(by_node) == ["fc", "gelu", "scores", "scale"]
    assert by_node["fc"].fused == ("bias",) and by_node["fc"].kernel.dims == (1, 32, 64, 32)
    assert by_node["gelu"].kernel.op == "gelu" and set(by_node["gelu"].fused) == {"div", "erf", "add1", "mul"}
    assert by_node["scores"].kernel.dims == (2, 16, 16, 64) and by_node["scale"].kernel.op == "mulu"
    unnamed = chain([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Relu", ["r"], ["y"])], {"x": (1, 8)},
                    ["y"])
    assert [k.node for k in onnx_kernels(unnamed.SerializeToString())[0]] == ["r", "y"]  # named by output when unnamed


def test_cost_model_learns_efficiency_and_round_trips(tmp_path):
    spec_a, spec_b = GpuSpec.from_dict(T4), GpuSpec.from_dict({**T4, "Device": "Fast", "SingleFLOPs": 20000,
                                                               "Mem_Bw": 900, "Num_Sm": 80})
    rng = random.Random(0)
    rows = []
    for gpu in (spec_a, spec_b):
        for _ in range(400):
            k = Kernel.gemm(rng.randint(1, 8), rng.randint(16, 2048), rng.randint(16, 2048), rng.randint(16, 2048))
            rows.append(Measurement(k, gpu.key, 2.0 * k.roofline_ms(gpu)))  # every kernel at half the roofline
    model = fit_cost_model(rows, {s.name: s for s in (spec_a, spec_b)}, max_iter=50)
    probe = [Kernel.gemm(2, 512, 512, 512)]
    for gpu in (spec_a, spec_b):
        assert model.predict_ms(probe, gpu)[0] == pytest.approx(2.0 * probe[0].roofline_ms(gpu), rel=0.05)
    model.save(tmp_path / "m")
    again = KernelCostModel.load(tmp_path / "m")
    assert np.allclose(again.predict_ms(probe, spec_a), model.predict_ms(probe, spec_a))


@pytest.mark.skipif(not (REPO / "predictors" / "gpu" / "manifest.json").exists(), reason="no shipped GPU predictor")
def test_predict_cli_on_a_gpu_by_name_and_by_spec(tmp_path):
    model = chain([helper.make_node("MatMul", ["x", "w"], ["y"])], {"x": (1, 512)}, ["y"], [weight("w", (512, 512))])
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    spec = tmp_path / "gpu.json"
    spec.write_text(json.dumps({**T4, "Device": "My GPU", "SingleFLOPs": 30000, "Mem_Bw": 1500}))
    results = []
    for flags in (["--gpu", "Tesla T4"], ["--gpu-spec", str(spec)]):
        run = subprocess.run([sys.executable, "-m", "perfseer.cli", "predict", str(path), *flags, "--batch-size",
                              "64", "--json"], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        results.append(json.loads(run.stdout)[0])
    assert all(r["train_time_ms"] > r["infer_time_ms"] > 0 for r in results)
    assert results[1]["gpu"] == "My GPU" and results[1]["infer_time_ms"] < results[0]["infer_time_ms"]
    bad = subprocess.run([sys.executable, "-m", "perfseer.cli", "predict", str(path), "--gpu", "nope"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown GPU" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.skipif(not (REPO / "predictors" / "gpu" / "manifest.json").exists(), reason="no shipped GPU predictor")
def test_fit_calibrates_a_gpu_from_models_timed_on_it(tmp_path):
    """``perfseer fit --gpu-spec SPEC --measurements runs.csv``: one scale per metric (the geometric mean of
    measured / predicted), a metric never measured takes the other's, implausible runs are refused in one line."""
    from seernet.gpu.predictor import GpuPredictor

    model = chain([helper.make_node("MatMul", ["x", "w"], ["y"])], {"x": (1, 512)}, ["y"], [weight("w", (512, 512))])
    (tmp_path / "m.onnx").write_bytes(model.SerializeToString())
    spec = tmp_path / "gpu.json"
    spec.write_text(json.dumps({**T4, "Device": "Lab GPU", "SingleFLOPs": 30000, "Mem_Bw": 1500}))
    shipped = GpuPredictor.load(REPO / "predictors" / "gpu")
    plain = shipped.predict(tmp_path / "m.onnx", GpuSpec.from_file(spec), 64)
    runs = tmp_path / "runs.csv"
    runs.write_text("onnx,batch_size,infer_time_ms\n"
                    f"m.onnx,64,{2 * plain['infer_time_ms']}\nm.onnx,64,{8 * plain['infer_time_ms']}\n")

    def fit(*flags: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "perfseer.cli", "fit", "--gpu-spec", str(spec), *flags], cwd=REPO,
                              capture_output=True, text=True, timeout=120)

    done = fit("--measurements", str(runs), "--out", str(tmp_path / "gpu-lab"))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)["calibration"]
    assert report["infer_time_ms"]["scale"] == pytest.approx(4.0, rel=1e-6)  # sqrt(2 × 8)
    assert report["infer_time_ms"]["ratio_min"] == pytest.approx(2.0) and report["train_time_ms"]["runs"] == 0
    calibrated = GpuPredictor.load(tmp_path / "gpu-lab")
    again = calibrated.predict(tmp_path / "m.onnx", calibrated.spec("lab gpu"), 64)
    assert again["infer_time_ms"] == pytest.approx(4 * plain["infer_time_ms"], rel=1e-6) and again["calibrated"]
    assert again["train_time_ms"] == pytest.approx(4 * plain["train_time_ms"], rel=1e-6)
    other = calibrated.predict(tmp_path / "m.onnx", calibrated.spec("Tesla T4"), 64)
    assert other["infer_time_ms"] == pytest.approx(shipped.predict(tmp_path / "m.onnx", shipped.spec("Tesla T4"), 64)
                                                   ["infer_time_ms"]) and not other["calibrated"]
    runs.write_text(f"onnx,batch_size,infer_time_ms\nm.onnx,64,{1000 * plain['infer_time_ms']}\n")
    bad = fit("--measurements", str(runs), "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "units" in bad.stderr and "Traceback" not in bad.stderr
    runs.write_text("onnx,infer_time_ms\nmissing.onnx,3\n")
    bad = fit("--measurements", str(runs), "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "no ONNX file" in bad.stderr
    assert fit("--dataset", "x.sqlite", "--out", str(tmp_path / "bad")).returncode == 2
    runs.write_text(f"onnx,batch_size,train_time_ms\nm.onnx,64,{3 * plain['train_time_ms']}\n")
    known = subprocess.run([sys.executable, "-m", "perfseer.cli", "fit", "--gpu-spec", "tesla t4", "--measurements",
                            str(runs), "--out", str(tmp_path / "gpu-t4")], cwd=REPO, capture_output=True, text=True,
                           timeout=120)  # a GPU the predictor knows, by name
    assert known.returncode == 0, known.stderr
    assert json.loads(known.stdout)["gpu"] == "Tesla T4"


@pytest.mark.skipif(not (REPO / "predictors" / "gpu" / "manifest.json").exists(), reason="no shipped GPU predictor")
def test_fit_calibrates_a_gpu_from_the_rows_a_gpu_worker_stored(tmp_path):
    """Rows a ``perfseer worker --device cuda:N`` measured feed the same calibration: those of the GPU the spec
    names (NVML's board name in the row's device), not the CPU rows beside them."""
    from profiler_worker.job import ProfileResult
    from profiler_worker.store import DatasetStore
    from seernet.export import export_config
    from seernet.gpu.predictor import GpuPredictor
    from seernet.spaces import get_space

    gpu = GpuSpec.from_dict({**T4, "Device": "Lab GPU", "SingleFLOPs": 30000, "Mem_Bw": 1500})
    spec = tmp_path / "gpu.json"
    spec.write_text(json.dumps(gpu.to_dict()))
    shipped = GpuPredictor.load(REPO / "predictors" / "gpu")
    store = DatasetStore(tmp_path / "rows.sqlite")
    rng = random.Random(3)
    for i, (device, name, factor) in enumerate([("cuda:0", "Lab GPU", 2.0), ("cuda:0", "Lab GPU", 2.0),
                                                ("cpu", "", 50.0), ("cuda:1", "Other GPU", 9.0)]):
        config = get_space("mlp").sample(rng)
        predicted = shipped.predict(export_config(config), gpu, config.batch_size)
        store.add(ProfileResult(
            job_id=f"j{i}", status="ok", reason="", family="mlp", config_json=config.to_json(),
            config_id=config.config_id, batch_size=config.batch_size, input_size=config.input_size, device=device,
            device_key=f"{device}:{name}", descriptor={"gpu_name": name} if name else {},
            metrics={"infer_time_ms": factor * predicted["infer_time_ms"], "train_time_ms": None,
                     "infer_mem_mb": None, "train_mem_mb": None}, stats={}, settings={}))
    done = subprocess.run([sys.executable, "-m", "perfseer.cli", "fit", "--gpu-spec", str(spec), "--dataset",
                           str(tmp_path / "rows.sqlite"), "--out", str(tmp_path / "gpu-lab")], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)["calibration"]["infer_time_ms"]
    assert report["runs"] == 2 and report["scale"] == pytest.approx(2.0, rel=1e-6)
    spec.write_text(json.dumps({**gpu.to_dict(), "name": "Unmeasured GPU"}))
    none = subprocess.run([sys.executable, "-m", "perfseer.cli", "fit", "--gpu-spec", str(spec), "--dataset",
                           str(tmp_path / "rows.sqlite"), "--out", str(tmp_path / "x")], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert none.returncode == 2 and "no rows measured on a GPU named" in none.stderr

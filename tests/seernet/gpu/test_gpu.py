"""GPU cost model: specs, the ONNX-operator → kernel mapping, the model's arrays, and the CLI."""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

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
    (_, _, gemm), (_, _, softmax) = kernels
    assert batch == 4 and gemm.family == "gemm" and gemm.dims == (1, 4 * 128, 256, 64)  # a linear layer: one GEMM
    assert gemm.flops == 2 * 4 * 128 * 256 * 64 and softmax.family == "softmax" and softmax.dims == (4 * 128, 256)
    bmm = chain([helper.make_node("MatMul", ["x", "y"], ["z"])], {"x": (1, 8, 32, 16), "y": (1, 8, 16, 64)}, ["z"])
    (_, _, batched), = onnx_kernels(bmm.SerializeToString(), batch_size=2)[0]
    assert batched.dims == (16, 32, 64, 16)
    conv = single_op("Conv", {"x": (1, 3, 32, 32)}, initializers=[weight("k", (16, 3, 3, 3))], pads=[1, 1, 1, 1])
    (_, _, k), = onnx_kernels(conv.SerializeToString(), batch_size=2)[0]
    assert k.family == "conv" and k.dims == (2, 3, 16, 3, 32, 1, 1)
    reshape = single_op("Flatten", {"x": (1, 3, 4)})
    assert onnx_kernels(reshape.SerializeToString())[0] == []  # metadata only: no kernel


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

"""Any ONNX a user brings: a fixed-batch export is predicted at its own batch, re-bound where it can be."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seernet.errors import GraphBuildError
from seernet.graph import build_graph

REPO = Path(__file__).resolve().parents[2]


class Net(torch.nn.Module):
    def __init__(self, baked_batch: int | None = None) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3)
        self.fc = torch.nn.Linear(8 * 6 * 6, 4)
        self.baked_batch = baked_batch

    def forward(self, x):
        h = torch.relu(self.conv(x))
        h = h.reshape(self.baked_batch, -1) if self.baked_batch else torch.flatten(h, 1)
        return self.fc(h)


def export(module: torch.nn.Module, batch: int) -> bytes:
    """``torch.onnx.export`` with its default static batch (no dynamic_axes), as users do."""
    buffer = io.BytesIO()
    torch.onnx.export(module.eval(), (torch.randn(batch, 3, 8, 8),), buffer, dynamo=False, input_names=["x"])
    return buffer.getvalue()


def test_a_fixed_batch_model_is_predicted_at_its_own_batch_and_rebound_on_request():
    model = export(Net(), 8)
    assert build_graph(model, batch_size=None).batch_size == 8
    at_8, at_2 = build_graph(model, batch_size=8), build_graph(model, batch_size=2)
    assert at_2.batch_size == 2 and at_8.global_value("flops_sum") == pytest.approx(4 * at_2.global_value("flops_sum"))


def test_a_batch_baked_into_a_reshape_is_refused_in_one_line():
    model = export(Net(baked_batch=8), 8)
    assert build_graph(model, batch_size=None).batch_size == 8
    with pytest.raises(GraphBuildError, match="fixed batch of 8") as info:
        build_graph(model, batch_size=2)
    assert "dynamic_axes" in str(info.value) and "\n" not in str(info.value)


def test_predict_cli_uses_the_models_batch_and_takes_dims(tmp_path, trained_predictor):
    path = tmp_path / "resnet_b8.onnx"
    path.write_bytes(export(Net(), 8))
    run = subprocess.run([sys.executable, "-m", "perfseer.cli", "predict", str(path), "--predictor",
                          str(trained_predictor), "--json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)[0]["batch_size"] == 8
    bad = subprocess.run([sys.executable, "-m", "perfseer.cli", "predict", str(path), "--predictor",
                          str(trained_predictor), "--dim", "seq"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "NAME=N" in bad.stderr


def test_predict_cli_explains_and_plots(tmp_path, trained_predictor):
    path = tmp_path / "net.onnx"
    path.write_bytes(export(Net(), 4))
    plot = tmp_path / "ops.png"
    run = subprocess.run([sys.executable, "-m", "perfseer.cli", "predict", str(path), "--predictor",
                          str(trained_predictor), "--explain", "--top", "3", "--json", "--plot", str(plot)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    ops = json.loads(run.stdout)[0]["operators"]
    assert len(ops) == 3 and {"node", "op_type", "infer_time_ms", "share", "fused"} <= set(ops[0])
    assert plot.stat().st_size > 1000

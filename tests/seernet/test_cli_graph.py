"""``perfseer graph``: the JSON contract and the human summary, on torch-exported files, stripped or not."""
from __future__ import annotations

import json
import subprocess
import sys

from seernet.spaces import SPACES
from seernet.export import export_config
from seernet.strip import strip_bytes

REQUIRED_KEYS = {"nodes", "edges", "flops", "macs", "params", "memory_bytes", "build_ms"}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "perfseer.cli", *args], capture_output=True, text=True, timeout=120)


def test_graph_json_on_full_and_stripped_exports(tmp_path):
    config = SPACES["cnn"].sample_n(1, seed=2, max_gflops=0.2)[0]
    data = export_config(config)
    full, stripped = tmp_path / "full.onnx", tmp_path / "stripped.onnx"
    full.write_bytes(data)
    stripped.write_bytes(strip_bytes(data))
    outputs = []
    for path in (full, stripped):
        result = run_cli("graph", str(path), "--batch-size", "4", "--json")
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert REQUIRED_KEYS <= set(summary)
        assert summary["nodes"] > 10 and summary["flops"] > summary["macs"] > 0 and summary["batch_size"] == 4
        outputs.append({k: v for k, v in summary.items() if k != "build_ms"})
    assert outputs[0] == outputs[1]


def test_graph_human_summary_and_errors(tmp_path):
    config = SPACES["mlp"].sample_n(1, seed=2)[0]
    path = tmp_path / "mlp.onnx"
    path.write_bytes(export_config(config))
    result = run_cli("graph", str(path))
    assert result.returncode == 0 and "operators" in result.stdout and "Gemm" in result.stdout
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"definitely not onnx")
    result = run_cli("graph", str(bad))
    assert result.returncode == 2 and "not an ONNX model" in result.stderr
    result = run_cli("graph", str(tmp_path / "missing.onnx"))
    assert result.returncode == 2 and "missing.onnx" in result.stderr
    result = run_cli("graph", str(path), "--batch-size", "0")
    assert result.returncode == 2 and "batch size" in result.stderr

"""``perfseer fit`` and ``perfseer predict`` on a tiny CSV, end to end through the CLI."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

from seernet.graph_cache import stripped_onnx
from seernet.spaces import SPACES
from seernet.spaces.nasbench201 import NasBench201Space
from tests.conftest import ROOT


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "perfseer.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)


def test_fit_then_predict_csv_and_files(tmp_path):
    space = NasBench201Space()
    arches = [c.arch["arch_str"] for c in space.sample_n(10, seed=4)]
    measurements = tmp_path / "m.csv"
    with measurements.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["arch_str", "batch_size", "latency_ms"])
        for k, arch in enumerate(arches):
            writer.writerow([arch, 1 + k % 2, 1.0 + arch.count("conv_3x3") + 0.5 * (1 + k % 2)])
    out = tmp_path / "predictor"
    fitted = cli("fit", "--measurements", str(measurements), "--target", "latency_ms", "--out", str(out),
                 "--space", "nasbench201", "--epochs", "3", "--ensemble", "2", "--methods", "seernet")
    assert fitted.returncode == 0, fitted.stderr
    assert json.loads(fitted.stdout)["target"] == "latency_ms"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metrics"] == ["latency_ms"] and sum(manifest["rows"].values()) == 10

    query = tmp_path / "q.csv"
    model_path = tmp_path / "mlp.onnx"
    model_path.write_bytes(stripped_onnx(SPACES["mlp"].sample_n(1, seed=2)[0]))
    with query.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["arch_str", "onnx", "batch_size"])
        writer.writerow([arches[0], "", 4])
        writer.writerow(["", "mlp.onnx", 2])
        writer.writerow(["|bogus~0|", "", 1])
    output = tmp_path / "out.csv"
    predicted = cli("predict", "--predictor", str(out), "--csv", str(query), "--output", str(output))
    assert predicted.returncode == 0, predicted.stderr
    rows = list(csv.DictReader(output.open()))
    assert [r["batch_size"] for r in rows] == ["4", "2", "1"]
    assert float(rows[0]["latency_ms"]) > 0 and float(rows[1]["latency_ms"]) > 0
    assert rows[2]["latency_ms"] == "" and "arch string" in rows[2]["error"]

    as_json = cli("predict", str(model_path), str(tmp_path / "missing.onnx"), "--predictor", str(out), "--json",
                  "--batch-size", "2")
    results = json.loads(as_json.stdout)
    assert results[0]["file"] == str(model_path) and results[0]["latency_ms"] > 0
    assert "error" in results[1] and as_json.returncode == 1


def test_fit_reports_bad_input(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("arch_str,latency_ms\n|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,abc\n")
    result = cli("fit", "--measurements", str(bad), "--target", "latency_ms", "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "not a number" in result.stderr
    result = cli("fit", "--measurements", str(bad), "--target", "nope", "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "no column 'nope'" in result.stderr


def test_fit_reads_the_dataset_store_directly(tmp_path):
    """Rows measured by `dataset build` (or workers) fit a predictor without hand-writing a CSV."""
    from profiler_worker.job import ProfileJob
    from profiler_worker.measure import measure_job
    from profiler_worker.settings import ProfileSettings
    from profiler_worker.store import DatasetStore
    from seernet.spaces import SPACES

    store = DatasetStore(tmp_path / "d.sqlite")
    settings = ProfileSettings(threads=1, warmup=1, min_repeats=3, max_repeats=5, time_cap_s=0.1, modes=("infer",),
                               op_profile=False)
    for config in SPACES["mlp"].sample_n(8, seed=4):
        assert store.add(measure_job(ProfileJob.for_config(config), settings))
    out = tmp_path / "fitted"
    result = cli("fit", "--dataset", str(tmp_path / "d.sqlite"), "--target", "infer_time_ms", "--out", str(out),
                 "--methods", "gbt", "ridge")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metrics"] == ["infer_time_ms"] and manifest["device_key"].startswith("cpu:")
    both = cli("fit", "--dataset", "x", "--measurements", "y", "--target", "t", "--out", str(out))
    assert both.returncode == 2 and "--measurements CSV or --dataset" in both.stderr
    own = cli("fit", "--dataset", str(tmp_path / "d.sqlite"), "--target", "infer_time_ms", "--out", str(out),
              "--auxiliary-dataset", str(tmp_path / "d.sqlite"))  # this device's rows cannot pose as another's
    assert own.returncode == 2 and "the device being fitted" in own.stderr
    missing = cli("fit", "--dataset", str(tmp_path / "d.sqlite"), "--target", "infer_time_ms", "--out", str(out),
                  "--auxiliary-dataset", str(tmp_path / "nope.sqlite"))
    assert missing.returncode == 2 and "nope.sqlite is not a dataset file" in missing.stderr
    unused = cli("fit", "--dataset", str(tmp_path / "d.sqlite"), "--target", "infer_time_ms", "--out", str(out),
                 "--methods", "ridge", "--auxiliary-dataset", str(tmp_path / "nope.sqlite"))
    assert unused.returncode == 2 and "infer_time_ms only" in unused.stderr  # no operator trees: nothing learns

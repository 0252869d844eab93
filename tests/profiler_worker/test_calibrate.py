"""`perfseer calibrate`: a budgeted run on this machine writes a predictor keyed to it, and a rerun resumes."""
from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from profiler_worker.calibrate import CalibrationError, CalibrationRequest, PoolEntry, calibrate, measurement_order
from profiler_worker.device_info import cpu_isa, cpu_model
from seernet.predictor import OperatorPredictor, Predictor
from seernet.spaces import ModelConfig

from ..conftest import ROOT, SHIPPED_PREDICTOR


def _entry(family: str, gflops: float, uncertainty: float, k: int) -> PoolEntry:
    return PoolEntry(ModelConfig("mlp", {"widths": [8 + k]}, 1, 8), family, gflops, uncertainty, "")


def test_the_order_spans_families_and_sizes_before_repeating_one():
    pool = [_entry("cnn", 0.1, 0.1 * k, k) for k in range(4)] + [_entry("bert", 0.001, 0.2, 10),
                                                                    _entry("mlp", 0.2, float("nan"), 11)]
    order = measurement_order(pool)
    assert {e.family for e in order[:3]} == {"cnn", "bert", "mlp"}  # one of each stratum first
    cnn = [e.uncertainty for e in order if e.family == "cnn"]
    assert cnn == sorted(cnn, reverse=True)  # least sure first within a stratum
    assert sorted(id(e) for e in order) == sorted(id(e) for e in pool)  # nothing lost, nothing twice


def test_budget_and_name_are_checked_before_any_work(tmp_path):
    with pytest.raises(CalibrationError, match="budget-minutes"):
        calibrate(CalibrationRequest(budget_minutes=0.1, out=tmp_path, workdir=tmp_path / "w"))
    with pytest.raises(CalibrationError, match="--name"):
        calibrate(CalibrationRequest(name="../evil", out=tmp_path, workdir=tmp_path / "w"))
    with pytest.raises(CalibrationError, match="max-models"):
        calibrate(CalibrationRequest(max_models=3, out=tmp_path, workdir=tmp_path / "w"))
    with pytest.raises(CalibrationError, match="nope.sqlite: not a dataset file"):
        calibrate(CalibrationRequest(auxiliary=(tmp_path / "nope.sqlite",), out=tmp_path, workdir=tmp_path / "w"))
    other_rows = tmp_path / "other.sqlite"
    other_rows.write_bytes(b"")
    with pytest.raises(CalibrationError, match="infer_time_ms only"):  # as `perfseer fit` refuses it
        calibrate(CalibrationRequest(auxiliary=(other_rows,), target="train_time_ms", out=tmp_path,
                                     workdir=tmp_path / "w"))
    with pytest.raises(CalibrationError, match="infer_time_ms only"):
        calibrate(CalibrationRequest(auxiliary=(other_rows,), methods=("ridge",), out=tmp_path, workdir=tmp_path / "w"))
    assert not (tmp_path / "w").exists()  # refused before the work directory, let alone a measurement


@pytest.mark.timeout(600)
def test_a_budgeted_calibration_writes_a_scored_predictor_for_this_machine(tmp_path):
    # the model count, not the clock, ends a fast machine's run; a slow one has three minutes to reach it
    budget = 3.0
    request = CalibrationRequest(budget_minutes=budget, max_models=14, out=tmp_path / "predictors", name="here",
                                 time_cap_s=0.05, max_gflops=0.05, methods=("pretrained_rescaled", "ridge", "operator_trees"),
                                 pretrained=SHIPPED_PREDICTOR, workdir=tmp_path / "work", progress=False)
    started = time.monotonic()
    result = calibrate(request)
    assert time.monotonic() - started < 60 * budget + 60  # the fit may overrun a little on a slow machine, not more
    summary = result.summary
    assert summary["device_key"] == f"cpu:{cpu_model()}:{cpu_isa()}:1t"
    assert sum(result.counts.get(s, 0) for s in ("ok", "partial", "failed")) <= 14 and result.pool <= 4 * 14
    assert summary["measured"] >= 10 and summary["held_out_rows"] >= 3
    assert set(summary["held_out"]) == {"calibrated", "shipped", "shipped_scaled"}
    predictor = Predictor.load(tmp_path / "predictors" / "here")
    assert predictor.device_key == summary["device_key"] and predictor.metrics == ("infer_time_ms",)
    manifest = json.loads((tmp_path / "predictors" / "here" / "manifest.json").read_text())
    assert manifest["calibration"]["device"]["libraries"]["onnxruntime"]
    assert manifest["rows"]["test"] == summary["held_out_rows"]
    assert (tmp_path / "predictors" / "here" / "calibration.png").stat().st_size > 1000
    # a rerun under the same name resumes: what was measured is not measured again, and the limit counts it
    again = calibrate(request)
    assert again.counts.get("already", 0) >= summary["measured"]
    assert sum(again.counts.get(s, 0) for s in ("ok", "partial", "failed")) == 0

    # from a shipped operator predictor, calibrated operator trees correct its trees rather than replace them
    shipped_operators = Predictor.load(ROOT / "predictors" / "cpu-amd-epyc-avx512")
    assert isinstance(shipped_operators, OperatorPredictor)
    from_operators = calibrate(replace(request, name="here-ops", methods=("operator_trees",),
                                       pretrained=ROOT / "predictors" / "cpu-amd-epyc-avx512"))
    assert from_operators.summary["selection"]["chosen"] == "operator_trees"
    assert set(from_operators.summary["held_out"]) == {"calibrated", "shipped", "shipped_scaled"}
    calibrated = Predictor.load(tmp_path / "predictors" / "here-ops")
    assert isinstance(calibrated, OperatorPredictor)
    assert len(calibrated.model.arrays["roots"]) > len(shipped_operators.model.arrays["roots"])
    assert calibrated.model.params["roofline"] == shipped_operators.model.params["roofline"]

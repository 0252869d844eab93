"""The closed loop: a worse or corrupt candidate is not promoted; a better one is, and the server swaps to it."""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from perfseer_client import PerfSeerClient
from seernet.nn import SeerNetConfig
from seernet.predictor import Predictor, save_predictor
from seernet.train import TrainConfig, fit_ensemble
from server.app import build_server
from profiler_worker.retrain_trigger import RetrainTrigger
from seernet.data import in_holdout
from seernet.repository import retrain, retrain_and_maybe_promote, rollback
from tests.server_fixtures import make_settings
from tests.server.fixtures import METRICS, tiny_samples

NET = SeerNetConfig(metrics=METRICS, hidden=16, layers=1)


def trainer(epochs: int):
    def train(samples, out: Path) -> None:
        ensemble = fit_ensemble(samples[:-3], samples[-3:], NET, TrainConfig(epochs=epochs, progress=False, batch_size=8,
                                                                             lr=5e-3, patience=100))
        save_predictor(ensemble, out, "cpu", "cpu:test-cpu:1t")
    return train


def corrupt_trainer(samples, out: Path) -> None:
    trainer(1)(samples, out)
    (out / "member-0.safetensors").write_bytes(b"not a tensor file")


def test_holdout_is_fixed_by_hash():
    keys = [f"job-{k}" for k in range(2000)]
    assert 150 < sum(map(in_holdout, keys)) < 250
    assert [in_holdout(k) for k in keys] == [in_holdout(k) for k in keys]


def test_worse_and_corrupt_candidates_are_not_promoted_and_the_old_version_keeps_serving(tmp_path):
    samples = tiny_samples(6)
    root = tmp_path / "predictors"
    trainer(60)(samples, root / "cpu")
    serving = Predictor.load(root / "cpu").version
    running = build_server(make_settings(root), watch_interval_s=0.1)
    try:
        client = PerfSeerClient(f"127.0.0.1:{running.port}")
        model = samples[0].config
        before = client.predict({"space": model.space, "arch": dict(model.arch), "input_size": model.input_size})
        worse = retrain_and_maybe_promote(root, "cpu", samples, trainer(0))
        assert not worse.promoted and "worse" in worse.reason
        corrupt = retrain_and_maybe_promote(root, "cpu", samples, corrupt_trainer)
        assert not corrupt.promoted and "failed" in corrupt.reason
        crashed = retrain_and_maybe_promote(root, "cpu", samples, lambda s, out: 1 / 0)
        assert not crashed.promoted and "ZeroDivisionError" in crashed.reason
        time.sleep(0.5)
        after = client.predict({"space": model.space, "arch": dict(model.arch), "input_size": model.input_size})
        assert after.predictor_version == before.predictor_version == serving
        assert len(list((root / ".reports").glob("cpu-*.json"))) >= 1
        assert not any((root / ".staging").iterdir())
    finally:
        running.stop(0.5)


def test_better_candidate_is_promoted_swapped_live_and_can_be_rolled_back(tmp_path):
    samples = tiny_samples(6)
    root = tmp_path / "predictors"
    trainer(0)(samples, root / "cpu")  # an untrained serving version
    first = Predictor.load(root / "cpu").version
    running = build_server(make_settings(root), watch_interval_s=0.1)
    try:
        client = PerfSeerClient(f"127.0.0.1:{running.port}")
        request = {"space": samples[0].config.space, "arch": dict(samples[0].config.arch), "input_size": 32}
        assert client.predict(request).predictor_version == first
        decision = retrain_and_maybe_promote(root, "cpu", samples, trainer(60))
        assert decision.promoted and decision.candidate_mape < decision.current_mape
        deadline = time.time() + 10
        while time.time() < deadline and client.predict(request).predictor_version == first:
            time.sleep(0.1)
        assert client.predict(request).predictor_version == decision.version
        assert (root / ".history" / "cpu" / first / "manifest.json").exists()
        rollback(root, "cpu", first)
        deadline = time.time() + 10
        while time.time() < deadline and client.predict(request).predictor_version != first:
            time.sleep(0.1)
        assert client.predict(request).predictor_version == first
        assert (root / ".history" / "cpu" / decision.version).exists()
    finally:
        running.stop(0.5)


def test_a_candidate_worse_on_the_guard_set_is_not_promoted(tmp_path):
    """Better on the holdout is not enough: the guard set (real architectures) must not get worse."""
    samples = tiny_samples(6)
    root = tmp_path / "predictors"
    trainer(0)(samples, root / "cpu")
    serving = Predictor.load(root / "cpu")
    # a guard set the serving version predicts exactly: any different candidate is worse there
    guard = [replace(s, key=f"guard-{k}", targets=prediction.values)
             for k, (s, prediction) in enumerate(zip(samples[:4], serving.predict_graphs([s.graph for s in samples[:4]])))]
    decision = retrain_and_maybe_promote(root, "cpu", samples, trainer(60), guard)
    assert not decision.promoted and "guard set of 4 real architectures" in decision.reason
    assert decision.candidate_mape < decision.current_mape  # it did win on the holdout
    assert decision.current_guard_mape < 1e-3 < decision.candidate_guard_mape
    assert Predictor.load(root / "cpu").version == serving.version
    report = json.loads(sorted((root / ".reports").glob("cpu-*.json"))[-1].read_text())
    assert report["guard"] == 4 and report["candidate_guard_mape"] == decision.candidate_guard_mape


def test_measured_zoo_rows_become_guard_samples(tmp_path):
    from seernet.zoo import measured_zoo_samples

    path = tmp_path / "zoo_measured.json"
    rows = [{"model": "bert_mini", "batch_size": 2, "status": "ok", "infer_time_ms": 21.0, "infer_mem_mb": 90.0},
            {"model": "bert_mini", "batch_size": 4, "status": "failed", "infer_time_ms": None}]
    path.write_text(json.dumps({"rows": rows}))
    [sample] = measured_zoo_samples(path)
    assert sample.targets == {"infer_time_ms": 21.0, "infer_mem_mb": 90.0} and sample.graph.batch_size == 2
    path.write_text(json.dumps({"rows": [{"model": "alexnet", "batch_size": 1, "infer_time_ms": 5.0}]}))
    with pytest.raises(ValueError, match="alexnet"):
        measured_zoo_samples(path)


def test_retrain_cli_refuses_an_unreadable_guard_set(tmp_path, capsys):
    from perfseer.cli import main

    missing = tmp_path / "zoo_measured.json"
    code = main(["retrain", "--predictors", str(tmp_path), "--guard", str(missing), "--epochs", "1"])
    assert code == 2 and str(missing) in capsys.readouterr().err


def test_trigger_launches_one_retrain_after_enough_rows():
    launched = []

    class FakeProcess:
        def __init__(self) -> None:
            self.done = False

        def poll(self):
            return 0 if self.done else None

    def launch():
        launched.append(FakeProcess())
        return launched[-1]

    trigger = RetrainTrigger(5, launch)
    assert not trigger(3) and not launched
    assert trigger(3) and len(launched) == 1
    assert not trigger(10)  # one retrain at a time
    launched[0].done = True
    assert trigger(1) and len(launched) == 2


def test_a_retrained_predictor_has_test_scores_and_a_dataset_hash(tmp_path):
    """Every predictor on disk comes from one train-score-save path: a promoted retrain carries the same manifest
    fields as ``perfseer train`` (ListPredictors shows its test MAPE)."""
    samples = tiny_samples(6)
    decision = retrain(tmp_path, "cpu", samples, NET, TrainConfig(epochs=2, progress=False, batch_size=8),
                       "cpu:test-cpu:1t", source={"dataset": "tiny"})
    assert decision.promoted, decision.reason
    manifest = json.loads((tmp_path / "cpu" / "manifest.json").read_text())
    assert manifest["dataset_hash"] and manifest["dataset"] == "tiny"
    assert set(manifest["scores"]["test"]) == set(METRICS) and manifest["rows"]["test"] > 0

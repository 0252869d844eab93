"""``perfseer predict --server`` goes through the service; uncertain predictions become profiling jobs."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import redis

from profiler_worker.queue import JobQueue
from seernet.graph_cache import stripped_onnx
from seernet.spaces import SPACES
from server.app import build_server
from server.core import PredictQuery
from tests.conftest import ROOT
from tests.server_fixtures import make_settings


def test_predict_cli_through_the_server(server, tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(stripped_onnx(SPACES["mlp"].sample_n(1, seed=8)[0]))
    command = [sys.executable, "-m", "perfseer.cli", "predict", str(path), "--server", f"127.0.0.1:{server.port}",
               "--batch-size", "3", "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = json.loads(subprocess.run(command, capture_output=True, text=True, env=env, timeout=120).stdout)
    second = json.loads(subprocess.run(command, capture_output=True, text=True, env=env, timeout=120).stdout)
    assert first[0]["predictor"] == "cpu" and first[0]["infer_time_ms"] > 0 and not first[0]["cache_hit"]
    assert second[0]["cache_hit"] and second[0]["infer_time_ms"] == first[0]["infer_time_ms"]
    assert server.service.stats["requests"] >= 2


def test_uncertain_predictions_are_turned_into_profiling_jobs(predictors_dir, redis_server):
    settings = make_settings(predictors_dir, redis_server.url)
    settings.profile_uncertain_above = 1e-9  # every prediction of a 2-member ensemble is "uncertain"
    running = build_server(settings, watch_interval_s=1.0)
    try:
        config = SPACES["nasbench201"].sample_n(1, seed=4)[0]
        running.service.predict(PredictQuery(config=config, batch_size=2))
        queue = JobQueue(redis.Redis.from_url(redis_server.url, decode_responses=True))
        assert queue.redis.xlen(queue.names.jobs) == 1
        assert running.service.stats["profiling_requested"] == 1
        entry = queue.redis.xrange(queue.names.jobs)[0][1]
        assert json.loads(entry["config"])["arch"] == dict(config.arch) and entry["batch_size"] == "2"
    finally:
        running.stop(0.5)


def _registry(keys: dict[str, str], default: str | None = None):
    from types import SimpleNamespace

    predictors = [SimpleNamespace(name=n, device_key=k) for n, k in sorted(keys.items())]
    chosen = next((p for p in predictors if p.name == default), predictors[0])
    return SimpleNamespace(all=lambda: predictors, default=lambda: chosen, names=lambda: sorted(keys),
                           root="predictors")


def test_serve_notes_a_machine_no_predictor_was_measured_on():
    from server.app import unmatched_machine_note

    registry = _registry({"cpu": "cpu:AMD EPYC 7B13:1t", "gpu": "gpu:Tesla T4"})
    note = unmatched_machine_note(registry, "Intel(R) Xeon(R) Processor")
    assert note is not None and "Intel(R) Xeon(R) Processor" in note and "calibrate" in note
    assert unmatched_machine_note(registry, "AMD EPYC 7B13") is None
    calibrated = _registry({"cpu": "cpu:Intel(R) Xeon(R) Processor:0t:opt-basic"})
    assert unmatched_machine_note(calibrated, "Intel(R) Xeon(R) Processor") is None
    # the same model name with another vector ISA is another machine (2.2× apart, measured)
    isa_keyed = _registry({"cpu": "cpu:AMD EPYC:avx2:1t"})
    assert unmatched_machine_note(isa_keyed, "AMD EPYC:avx2") is None
    assert unmatched_machine_note(isa_keyed, "AMD EPYC:avx512") is not None


def test_serve_notes_when_this_machines_predictor_is_not_the_default():
    from server.app import missing_default_note, unmatched_machine_note

    keys = {"cpu": "cpu:AMD EPYC:1t", "cpu-xeon": "cpu:Intel(R) Xeon(R) Processor:avx512:1t"}
    note = unmatched_machine_note(_registry(keys, "cpu"), "Intel(R) Xeon(R) Processor:avx512")
    assert note is not None and "'cpu-xeon'" in note and "--default-predictor cpu-xeon" in note
    assert unmatched_machine_note(_registry(keys, "cpu-xeon"), "Intel(R) Xeon(R) Processor:avx512") is None
    assert missing_default_note(_registry(keys), "cpu") is None
    assert "'mine' is not under" in missing_default_note(_registry(keys), "mine")


def test_the_default_predictor_is_a_setting(predictors_dir, trained_predictor):
    import shutil

    shutil.copytree(trained_predictor, predictors_dir / "other")
    settings = make_settings(predictors_dir)
    settings.apply_overrides(default_predictor="other")
    running = build_server(settings, watch_interval_s=0.2)
    try:
        assert running.registry.default().name == "other"
    finally:
        running.stop(0.2)

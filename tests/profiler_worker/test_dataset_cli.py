"""``perfseer dataset build | stats | submit`` and the resumable plan."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import redis

from profiler_worker.dataset_build import BuildPlan, iter_plan
from profiler_worker.queue import JobQueue
from profiler_worker.store import DatasetStore
from seernet.spaces.timm_space import held_out_archs, is_held_out
from tests.conftest import ROOT

FAST = {"PERFSEER_PROFILE_TIME_CAP_S": "0.05", "PERFSEER_PROFILE_MIN_REPEATS": "2", "PERFSEER_PROFILE_MAX_REPEATS": "3"}


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **FAST, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "perfseer.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)


def test_build_resumes_and_stats_reports_families(tmp_path):
    out = tmp_path / "d.sqlite"
    first = cli("dataset", "build", "--space", "mlp", "--n", "3", "--out", str(out))
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["ok"] == 3
    again = cli("dataset", "build", "--space", "mlp", "--n", "4", "--out", str(out))
    counts = json.loads(again.stdout)
    assert counts["skipped"] == 3 and counts["ok"] == 1
    stats = cli("dataset", "stats", "--dataset", str(out), "--json")
    summary = json.loads(stats.stdout)
    assert summary["rows"] == 4 and summary["families"] == {"mlp": 4}
    human = cli("dataset", "stats", "--dataset", str(out))
    assert "4 measured rows" in human.stdout and "mlp" in human.stdout
    missing = cli("dataset", "stats", "--dataset", str(tmp_path / "nope.sqlite"))
    assert missing.returncode == 2 and "no dataset" in missing.stderr


def test_a_build_can_weight_spaces_and_measure_inference_alone(tmp_path):
    out = tmp_path / "d.sqlite"
    built = cli("dataset", "build", "--space", "mlp=3,nasbench201=1", "--n", "4", "--modes", "infer",
                "--out", str(out))
    assert built.returncode == 0, built.stderr
    assert json.loads(built.stdout)["ok"] == 4
    rows = DatasetStore(out).rows()
    assert all(r["infer_time_ms"] > 0 and r["train_time_ms"] is None for r in rows)
    assert {r["family"] for r in rows} <= {"mlp", "nasbench201"}
    plan = BuildPlan.for_space("mlp=3,nasbench201=1", 200, seed=0)
    spaces = [plan.config_at(i).space for i in range(200)]
    assert 0.6 < spaces.count("mlp") / 200 < 0.9  # drawn in proportion to the shares
    for space, why in (("mlpx=1", "unknown model space 'mlpx'"), ("mlp=x", "must be a number"),
                       ("mlp=0", "must be positive")):
        bad = cli("dataset", "build", "--space", space, "--n", "1", "--out", str(tmp_path / "bad.sqlite"))
        assert bad.returncode == 2 and why in bad.stderr and "Traceback" not in bad.stderr


def test_a_plan_can_aim_the_timm_space_at_named_families(tmp_path):
    plan = BuildPlan.for_space("timm=3,mlp=1", 60, seed=0, timm_archs=("regnet*", "*resnext*"))
    drawn = [plan.config_at(i) for i in range(60)]
    timm = [c.arch["model"] for c in drawn if c.space == "timm"]
    assert timm and all(m.startswith("regnet") or "resnext" in m for m in timm)
    assert len(set(timm)) > 3 and all(not is_held_out(m) for m in timm)
    assert any(c.space == "mlp" for c in drawn)  # other spaces draw as before
    for args, why in ((("--space", "mlp", "--timm-archs", "regnet*"), "draws no timm models"),
                      (("--space", "timm", "--timm-archs", "nomatch*"), "matches nothing"),
                      (("--space", "timm", "--timm-archs", held_out_archs()[0]), "only held-out")):
        bad = cli("dataset", "build", *args, "--n", "1", "--out", str(tmp_path / "bad.sqlite"))
        assert bad.returncode == 2 and "--timm-archs" in bad.stderr and why in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad.sqlite").exists()


def test_a_plan_can_aim_at_named_batch_sizes(tmp_path):
    plan = BuildPlan.for_space("timm=1,cnn=1,hf=1", 60, seed=0, batch_sizes=(4, 8))
    drawn = [plan.config_at(i) for i in range(60)]
    assert {c.batch_size for c in drawn} == {4, 8} and {c.space for c in drawn} == {"timm", "cnn", "hf"}
    assert {c.batch_size for c in (BuildPlan.for_space("timm", 40, seed=0).config_at(i) for i in range(40))} \
        == {1, 2, 4, 8}  # without it, the space's own
    for args, why in ((("--space", "hf", "--batch-sizes", "8,16"), "the hf space draws batch sizes 1, 2, 4, 8, not 16"),
                      (("--space", "cnn", "--batch-sizes", "0"), "not 0"),
                      (("--space", "cnn", "--batch-sizes", "4,x"), "expected comma-separated integers")):
        bad = cli("dataset", "build", *args, "--n", "1", "--out", str(tmp_path / "bad.sqlite"))
        assert bad.returncode == 2 and "--batch-sizes" in bad.stderr and why in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad.sqlite").exists()


def test_plan_is_index_addressable_and_cached(tmp_path):
    plan = BuildPlan.for_space("all", 6, seed=1, max_gflops=0.5)
    plan_file = tmp_path / "plan.jsonl"
    whole = [c.to_json() for _, c in iter_plan(plan, plan_file)]
    assert len(plan_file.read_text().splitlines()) == 6
    shards = [c.to_json() for k in (0, 1) for _, c in iter_plan(plan, tmp_path / f"p{k}.jsonl", (k, 2))]
    assert sorted(shards) == sorted(whole)
    assert [c.to_json() for _, c in iter_plan(plan, plan_file)] == whole  # read back, not re-sampled


def test_submit_puts_jobs_on_the_stream(redis_server):
    result = cli("dataset", "submit", "--space", "nasbench201", "--n", "3", "--redis", redis_server.url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["submitted"] == 3
    queue = JobQueue(redis.Redis.from_url(redis_server.url, decode_responses=True))
    assert queue.redis.xlen(queue.names.jobs) == 3


def test_export_never_runs_beside_a_measurement_on_the_same_core(tmp_path, monkeypatch):
    """An export on the measuring core doubles measured times: on shared cores they must alternate."""
    import threading
    import time
    from types import SimpleNamespace

    from profiler_worker import dataset_build
    from profiler_worker.settings import ProfileSettings

    busy, overlaps, lock = [0], [0], threading.Lock()

    def occupy(result):
        with lock:
            busy[0] += 1
            overlaps[0] += busy[0] > 1
        time.sleep(0.02)
        with lock:
            busy[0] -= 1
        return result

    monkeypatch.setattr(dataset_build, "export_isolated",
                        lambda *a, **k: occupy(SimpleNamespace(ok=True, result={"onnx": b""})))
    monkeypatch.setattr(dataset_build, "measure_job", lambda job, *a, **k: occupy(SimpleNamespace(status="ok")))
    store = SimpleNamespace(job_ids=lambda table: set(), add=lambda result, table: None, path=tmp_path / "d.sqlite")
    plan = BuildPlan.for_space("mlp", 8, seed=0)
    counts = dataset_build.build_dataset(store, plan, ProfileSettings(cpu_affinity=(1,)), plan_file=tmp_path / "p.jsonl",
                                         progress=False, prefetch_affinity=(1,))
    assert counts["ok"] == 8 and overlaps[0] == 0
    assert dataset_build.shares_cores((1,), None) and not dataset_build.shares_cores((1,), (0,))

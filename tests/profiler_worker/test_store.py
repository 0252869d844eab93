"""The dataset store's quarantine and the noise-floor report built on its two tables."""
from __future__ import annotations

import json

import pytest

from profiler_worker.job import ProfileResult
from profiler_worker.noise import ROUND_GAP_S, noise_floor_report
from profiler_worker.store import DatasetStore
from tests.profiler_worker.test_dataset_cli import cli


def result(job_id: str, infer_ms: float, measured_at: float = 1_000_000.0) -> ProfileResult:
    return ProfileResult(job_id=job_id, status="ok", reason="", family="mlp", config_json=json.dumps({"space": "mlp"}),
                         config_id=job_id.split("@")[0], batch_size=1, input_size=8, device="cpu",
                         device_key="cpu:test:1t",
                         metrics={"infer_time_ms": infer_ms, "train_time_ms": 2 * infer_ms, "infer_mem_mb": 10.0,
                                  "train_mem_mb": None},
                         stats={}, descriptor={}, settings={"threads": 1}, measured_at=measured_at)


def test_quarantine_moves_rows_with_their_reason_and_frees_the_config(tmp_path):
    store = DatasetStore(tmp_path / "d.sqlite")
    for i in range(3):
        store.add(result(f"c{i}@cpu", 1.0 + i))
    assert store.quarantined_count() == 0
    assert store.quarantine(["c0@cpu", "c2@cpu", "missing@cpu"], reason="export shared the core") == 2
    assert store.job_ids() == {"c1@cpu"}
    assert store.stats()["rows"] == 1 and store.stats()["quarantined"] == 2
    # the config is missing again, so a resumed build measures it afresh
    assert store.add(result("c0@cpu", 5.0)) and store.job_ids() == {"c0@cpu", "c1@cpu"}
    with pytest.raises(ValueError, match="reason"):
        store.quarantine(["c1@cpu"], reason=" ")


def test_quarantine_and_noise_from_the_command_line(tmp_path):
    store = DatasetStore(tmp_path / "d.sqlite")
    for i in range(2):
        store.add(result(f"c{i}@cpu", 1.0))
    ids = tmp_path / "ids.txt"
    ids.write_text("c1@cpu\n\n")
    run = cli("dataset", "quarantine", "--dataset", str(store.path), "--job-ids", str(ids), "--reason", "noisy")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"asked": 1, "moved": 1, "quarantined": 1, "rows": 1}
    no_reason = cli("dataset", "quarantine", "--dataset", str(store.path), "--job-ids", str(ids), "--reason", "")
    assert no_reason.returncode == 2 and "reason" in no_reason.stderr
    no_file = cli("dataset", "quarantine", "--dataset", str(store.path), "--job-ids", str(tmp_path / "x"),
                  "--reason", "noisy")
    assert no_file.returncode == 2 and "no job-id file" in no_file.stderr
    bad_since = cli("dataset", "noise", "--dataset", str(store.path), "--since", "yesterday")
    assert bad_since.returncode == 2 and "--since" in bad_since.stderr


def test_noise_floor_pairs_only_kept_originals_and_reports_rounds(tmp_path):
    store = DatasetStore(tmp_path / "d.sqlite")
    for i in range(4):
        store.add(result(f"c{i}@cpu", 10.0))
    # round 1: +10 % and +30 %; round 2, much later: +2 %; c3's original is quarantined, so its pair is left out
    store.add(result("c0@cpu", 11.0, measured_at=2_000_000.0), "remeasurements")
    store.add(result("c1@cpu", 13.0, measured_at=2_000_060.0), "remeasurements")
    store.add(result("c2@cpu", 10.2, measured_at=2_000_000.0 + 2 * ROUND_GAP_S), "remeasurements")
    store.add(result("c3@cpu", 50.0, measured_at=2_000_000.0 + 2 * ROUND_GAP_S), "remeasurements")
    store.quarantine(["c3@cpu"], reason="test")
    report = noise_floor_report(store)
    infer = report["metrics"]["infer_time_ms"]
    assert report["pairs"] == 3 and infer["median_pct"] == pytest.approx(10.0)
    assert "train_mem_mb" not in report["metrics"]  # never measured: nothing to compare
    assert [r["pairs"] for r in report["rounds"]] == [2, 1]
    assert report["rounds"][0]["metrics"]["infer_time_ms"]["median_pct"] == pytest.approx(20.0)
    assert report["rounds"][1]["metrics"]["infer_time_ms"]["median_pct"] == pytest.approx(2.0)
    assert report["rounds"][0]["started"].endswith("Z") and report["since"] is None
    later = noise_floor_report(store, since=2_000_000.0 + ROUND_GAP_S)  # headline: the second round only
    assert later["pairs"] == 1 and later["metrics"]["infer_time_ms"]["median_pct"] == pytest.approx(2.0)
    assert len(later["rounds"]) == 2 and later["since"].endswith("Z")


def test_remeasure_draws_only_configs_not_re_measured_yet(tmp_path, monkeypatch):
    """Each ``--remeasure N`` run adds N new pairs: a config is never drawn twice."""
    from profiler_worker import dataset_build
    from profiler_worker.settings import ProfileSettings
    from seernet.spaces import get_space

    store = DatasetStore(tmp_path / "d.sqlite")
    space = get_space("mlp")
    for i, config in enumerate(space.sample_n(6, seed=3)):
        row = result(f"c{i}@cpu", 1.0)
        row.config_json = config.to_json()
        store.add(row)
    measured: list[str] = []

    def fake_measure(job, settings):
        measured.append(job.job_id)
        return result(job.job_id, 1.1)

    monkeypatch.setattr(dataset_build, "measure_job", fake_measure)
    first = dataset_build.remeasure_sample(store, 4, ProfileSettings(), seed=0, progress=False)
    second = dataset_build.remeasure_sample(store, 4, ProfileSettings(), seed=0, progress=False)
    assert first["ok"] == 4 and second["ok"] == 2  # only two configs were left
    assert len(measured) == len(set(measured)) == 6
    assert store.job_ids("remeasurements") == store.job_ids()

"""Which predictor answers for which device: the rule the service and `perfseer predict` share."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from seernet.devices import cpu_of_key, machine_predictor, predictor_keys, predictor_summaries, resolve_device

REPO = Path(__file__).resolve().parents[2]
KEYS = {"cpu": "cpu:AMD EPYC:1t", "cpu-xeon": "cpu:Intel(R) Xeon(R) Processor:avx512:1t",
        "cpu-xeon-all-cores": "cpu:Intel(R) Xeon(R) Processor:avx512:0t", "cpu-avx2": "cpu:AMD EPYC:avx2:1t",
        "gpu": "gpu:Tesla T4"}


def test_a_keys_cpu_part_leaves_out_the_run_settings():
    assert cpu_of_key("cpu:AMD EPYC:avx2:1t") == "AMD EPYC:avx2"
    assert cpu_of_key("cpu:Intel(R) Xeon(R) Processor:0t:opt-basic") == "Intel(R) Xeon(R) Processor"
    assert cpu_of_key("cpu:AMD EPYC 7B13:1t") == "AMD EPYC 7B13"
    assert cpu_of_key("gpu:Tesla T4") is None


def test_a_device_resolves_by_name_then_exact_key_then_prefix():
    assert resolve_device(KEYS, "cpu-avx2") == "cpu-avx2"
    assert resolve_device(KEYS, "cpu:AMD EPYC:avx2:1t") == "cpu-avx2"
    assert resolve_device(KEYS, "cpu:Intel(R) Xeon(R) Processor") == "cpu-xeon"  # first by name
    assert resolve_device(KEYS, "gpu") == "gpu"
    assert resolve_device(KEYS, "cpu:AMD") is None  # a prefix ends at a ':'
    assert resolve_device(KEYS, "tpu") is None


def test_this_machines_predictor_is_the_one_measured_on_its_cpu_with_one_thread():
    assert machine_predictor(KEYS, "Intel(R) Xeon(R) Processor:avx512") == "cpu-xeon"
    assert machine_predictor(KEYS, "Intel(R) Xeon(R) Processor:avx512", threads=0) == "cpu-xeon-all-cores"
    assert machine_predictor(KEYS, "AMD EPYC:avx2") == "cpu-avx2"
    assert machine_predictor(KEYS, "AMD EPYC:avx512") is None  # another ISA is another machine
    assert machine_predictor({"only": "cpu:X:avx2:4t"}, "X:avx2") == "only"  # any thread count beats none


def test_predictor_keys_read_manifests_and_skip_broken_directories(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "manifest.json").write_text(json.dumps({"device_key": "cpu:X:1t"}))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{not json")
    (tmp_path / "empty").mkdir()
    (tmp_path / "gpu").mkdir()
    (tmp_path / "gpu" / "manifest.json").write_text(json.dumps({"kind": "gpu-kernels", "trained_on": ["Tesla T4"]}))
    assert predictor_keys(tmp_path) == {"a": "cpu:X:1t"}


def _predict(root: Path, model: Path, *flags: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PERFSEER_PREDICTORS": str(root)}
    return subprocess.run([sys.executable, "-m", "perfseer.cli", "predict", str(model), "--json", *flags], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env=environment)


def test_predict_cli_answers_for_this_machine_unless_told_another_device(tmp_path, trained_predictor):
    from profiler_worker.device_info import cpu_identity
    from seernet.predictor import write_manifest
    from tests.seernet.test_static_batch import Net, export

    model = tmp_path / "net.onnx"
    model.write_bytes(export(Net(), 2))
    root = tmp_path / "predictors"
    shutil.copytree(trained_predictor, root / "cpu")
    run = _predict(root, model)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)[0]["predictor"] == json.loads((root / "cpu" / "manifest.json").read_text())["name"]
    assert "no predictor" in run.stderr and "calibrate" in run.stderr  # says it answers for another machine

    mine = root / "this-machine"
    shutil.copytree(trained_predictor, mine)
    manifest = json.loads((mine / "manifest.json").read_text())
    write_manifest(mine, {**manifest, "name": "this-machine", "device_key": f"cpu:{cpu_identity()}:1t"})
    mine_run = _predict(root, model)
    assert json.loads(mine_run.stdout)[0]["predictor"] == "this-machine" and "note:" not in mine_run.stderr
    assert json.loads(_predict(root, model, "--device", "cpu").stdout)[0]["predictor"] != "this-machine"

    unknown = _predict(root, model, "--device", "cpu:Nonexistent CPU")
    assert unknown.returncode == 2
    assert unknown.stderr.count("\n") == 1 and "no predictor for device 'cpu:Nonexistent CPU'" in unknown.stderr
    assert "this-machine (cpu:" in unknown.stderr  # what the user could have named
    on_gpu = _predict(root, model, "--device", "gpu:Tesla T4", "--gpu-predictor", str(REPO / "predictors" / "gpu"))
    assert on_gpu.returncode == 0, on_gpu.stderr  # a GPU named as the service takes it
    assert json.loads(on_gpu.stdout)[0]["gpu"] == "Tesla T4"


def test_predict_threads_picks_the_predictor_measured_at_that_count(tmp_path, trained_predictor):
    from profiler_worker.device_info import cpu_identity
    from seernet.predictor import write_manifest
    from tests.seernet.test_static_batch import Net, export

    model = tmp_path / "net.onnx"
    model.write_bytes(export(Net(), 2))
    root = tmp_path / "predictors"
    for name, threads in (("one-thread", 1), ("two-threads", 2)):
        shutil.copytree(trained_predictor, root / name)
        manifest = json.loads((root / name / "manifest.json").read_text())
        write_manifest(root / name, {**manifest, "name": name, "device_key": f"cpu:{cpu_identity()}:{threads}t"})
    chosen = {flags: _predict(root, model, *flags) for flags in ((), ("--threads", "2"), ("--threads", "4"))}
    assert [json.loads(run.stdout)[0]["predictor"] for run in chosen.values()] == \
        ["one-thread", "two-threads", "one-thread"]
    assert "note:" not in chosen[()].stderr + chosen[("--threads", "2")].stderr
    assert "at 4 thread(s)" in chosen[("--threads", "4")].stderr  # says it answers for another count
    both = _predict(root, model, "--threads", "2", "--device", "one-thread")
    assert both.returncode == 2 and both.stderr.count("\n") == 1 and "--threads" in both.stderr


def test_each_shipped_predictor_is_the_answer_for_its_own_device_key():
    """Two shipped predictors under one key would make a request for that device (and this machine's default)
    answer from whichever sorts first: a refit that forgot ``--device-key`` once did exactly that."""
    keys = predictor_keys(REPO / "predictors")
    assert "cpu" in keys and len(keys) >= 2
    assert len(set(keys.values())) == len(keys), keys
    assert all(resolve_device(keys, key) == name for name, key in keys.items())


def test_summaries_say_where_an_operator_predictors_other_metrics_come_from(tmp_path):
    (tmp_path / "ops" / "base").mkdir(parents=True)
    (tmp_path / "ops" / "manifest.json").write_text(json.dumps(
        {"kind": "operators", "device_key": "cpu:X:avx2:1t", "metrics": ["infer_time_ms", "train_mem_mb"],
         "base": "base", "version": "v1", "memory_line": {"metric": "infer_mem_mb"}}))
    (tmp_path / "ops" / "base" / "manifest.json").write_text(json.dumps({"device_key": "cpu:Y:1t"}))
    (tmp_path / "gpu").mkdir()
    (tmp_path / "gpu" / "manifest.json").write_text(json.dumps({"kind": "gpu-kernels", "trained_on": ["T4", "P4"]}))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{")
    rows = {r["name"]: r for r in predictor_summaries(tmp_path)}
    assert rows["ops"]["base_device_key"] == "cpu:Y:1t" and rows["ops"]["kind"] == "operators"
    assert rows["ops"]["own_metrics"] == ["infer_time_ms", "infer_mem_mb"]
    assert rows["gpu"]["gpus"] == ["P4", "T4"]
    assert "unreadable manifest" in rows["broken"]["error"]


def test_predictors_cli_marks_what_predict_uses_here(tmp_path):
    from profiler_worker.device_info import cpu_identity

    for name, key in (("cpu", "cpu:Reference CPU:1t"), ("mine", f"cpu:{cpu_identity()}:1t")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps({"device_key": key, "metrics": ["infer_time_ms"]}))
    run = subprocess.run([sys.executable, "-m", "perfseer.cli", "predictors", "--json"], cwd=REPO, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PERFSEER_PREDICTORS": str(tmp_path)})
    assert run.returncode == 0, run.stderr
    listed = json.loads(run.stdout)
    assert listed["this_machine"] == cpu_identity()
    assert {r["name"]: r["default_here"] for r in listed["predictors"]} == {"cpu": False, "mine": True}

"""The CPU profiler on tiny models; the GPU path where a GPU exists."""
from __future__ import annotations

import pytest

from profiler_worker.backend import cuda_index, cuda_unavailable_reason, match_gpu_uuid, resolve_device
from profiler_worker.job import METRICS, ProfileJob
from profiler_worker.measure import measure_job
from profiler_worker.settings import ProfileSettings
from profiler_worker.timing import summarize, time_repeated
from seernet.export import export_config
from seernet.spaces import ModelConfig

TINY_MLP = ModelConfig("mlp", {"widths": [32, 32], "activation": "relu", "norm": "none"}, batch_size=4, input_size=16)


def fast_settings(**kw) -> ProfileSettings:
    return ProfileSettings(threads=1, warmup=1, min_repeats=3, max_repeats=10, time_cap_s=0.2, timeout_s=120, **kw)


def test_cpu_profiler_measures_a_tiny_model():
    result = measure_job(ProfileJob.for_config(TINY_MLP), fast_settings())
    assert result.status == "ok", result.reason
    for metric in ("infer_time_ms", "train_time_ms", "infer_mem_mb", "train_mem_mb"):
        assert result.metrics[metric] is not None and result.metrics[metric] >= 0, metric
    assert result.metrics["infer_time_ms"] > 0 and result.metrics["train_time_ms"] > 0
    assert result.metrics["infer_sm_util"] is None  # GPU only
    assert set(result.metrics) == set(METRICS)
    for mode in ("infer", "train"):
        stats = result.stats[mode]
        assert 3 <= stats["repeats"] <= 10 and stats["cv"] >= 0 and stats["stopped_because"]
    assert result.descriptor["threads"] == 1 and result.descriptor["cpu_model"]
    assert "onnxruntime" in result.descriptor["libraries"] and result.device_key.startswith("cpu:")
    assert result.family == "mlp" and result.settings["threads"] == 1


def test_onnx_job_measures_inference_and_explains_missing_training():
    job = ProfileJob(onnx_bytes=export_config(TINY_MLP), batch_size=2)
    result = measure_job(job, fast_settings())
    assert result.status == "ok" and result.metrics["infer_time_ms"] > 0
    assert result.metrics["train_time_ms"] is None and "skipped" in result.stats["train"]


def test_broken_config_is_a_failed_result_not_an_exception():
    bad = ModelConfig("cnn", {"stem_width": 16, "stages": [{"style": "bogus", "depth": 1, "width": 16}]})
    result = measure_job(ProfileJob.for_config(bad), fast_settings())
    assert result.status == "failed" and "bogus" in result.reason


def test_job_needs_exactly_one_model():
    with pytest.raises(ValueError):
        ProfileJob()
    with pytest.raises(ValueError):
        ProfileJob(config=TINY_MLP, onnx_bytes=b"x")


def test_repeat_policy_stops_on_stability_or_cap():
    stats = time_repeated(lambda: sum(range(1000)), fast_settings())
    assert stats.repeats >= 3 and stats.stopped_because in {"stable", "time_cap", "max_repeats"}
    s = summarize([1.0, 2.0, 3.0], "stable")
    assert s.median_ms == 2.0 and s.min_ms == 1.0 and s.cv == pytest.approx(0.5)


def test_cuda_falls_back_to_cpu_with_a_reason(caplog):
    reason = cuda_unavailable_reason("cuda:0")
    if reason is None:
        pytest.skip("a CUDA GPU is present: the fallback does not apply")
    assert resolve_device("cuda:0") == "cpu"
    assert "falling back to CPU" in caplog.text and reason in caplog.text
    with pytest.raises(RuntimeError, match="cannot profile on cuda:0"):
        resolve_device("cuda:0", allow_fallback=False)
    with pytest.raises(ValueError):
        resolve_device("tpu")


def test_cuda_devices_map_to_nvml_gpus_by_uuid():
    """NVML numbers GPUs physically; cuda:N is the N-th visible one: the UUID links them."""
    nvml = [b"GPU-11111111-aaaa-0000-0000-000000000000", "GPU-22222222-bbbb-0000-0000-000000000000",
            "GPU-22223333-cccc-0000-0000-000000000000"]
    assert match_gpu_uuid("11111111-aaaa-0000-0000-000000000000", nvml) == 0  # torch's bare form, NVML bytes
    assert match_gpu_uuid("GPU-22222222-BBBB-0000-0000-000000000000", nvml) == 1
    assert match_gpu_uuid("GPU-22223", nvml) == 2  # CUDA_VISIBLE_DEVICES accepts a unique prefix
    assert match_gpu_uuid("GPU-2222", nvml) is None  # ambiguous: no guess
    assert match_gpu_uuid("MIG-2222", nvml) is None and match_gpu_uuid("", nvml) is None
    assert (cuda_index("cuda"), cuda_index("cuda:3")) == (0, 3)


def test_gpu_profiler_measures_utilisation():
    reason = cuda_unavailable_reason("cuda:0")
    if reason is not None:
        pytest.skip(f"GPU path not exercised: {reason}")
    result = measure_job(ProfileJob.for_config(TINY_MLP, device="cuda:0"), fast_settings(device="cuda:0"))
    assert result.status == "ok", result.reason
    assert result.metrics["infer_sm_util"] is not None and result.metrics["train_sm_util"] is not None
    assert result.descriptor["gpu_name"]

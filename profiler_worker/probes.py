"""The measurements themselves, run inside an isolated child process.

``measure_inference`` times one batch through onnxruntime; ``measure_training``
times one optimizer step in torch.  Both pick CUDA or CPU from the device
string; on a machine without CUDA a ``cuda`` request fails loudly here and the
worker decides whether to fall back (see ``profiler_worker.backend``).
"""
from __future__ import annotations

import gc
from typing import Any

import numpy as np

from .backend import cuda_index
from .memory import NvmlSampler, RssPeakMeter
from .settings import ProfileSettings
from .timing import time_repeated

_ONNX_TO_NUMPY = {1: np.float32, 10: np.float16, 11: np.float64, 6: np.int32, 7: np.int64, 9: np.bool_}


def random_feeds(onnx_bytes: bytes, batch_size: int) -> dict[str, np.ndarray]:
    """Random inputs for every graph input; symbolic dims become the batch size."""
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    initializers = {i.name for i in model.graph.initializer}
    rng = np.random.default_rng(0)
    feeds = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else batch_size for d in tensor_type.shape.dim]
        dtype = _ONNX_TO_NUMPY.get(tensor_type.elem_type)
        if dtype is None:
            raise ValueError(f"input {value.name!r} has ONNX element type {tensor_type.elem_type}, which the profiler cannot feed")
        if np.issubdtype(dtype, np.integer):
            feeds[value.name] = np.zeros(dims, dtype=dtype)  # valid for embeddings and indices alike
        else:
            feeds[value.name] = rng.standard_normal(dims).astype(dtype)
    return feeds


def _session_options(settings: ProfileSettings):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[settings.graph_optimization]
    return options


def _operator_profile(onnx_bytes: bytes, settings: ProfileSettings, providers: list, feeds: dict) -> dict:
    """The per-operator profile, after (never during) the end-to-end timing; {} when switched off."""
    if not settings.op_profile:
        return {}
    from .op_profile import profile_operators

    return profile_operators(onnx_bytes, lambda: _session_options(settings), providers, feeds,
                             settings.op_profile_repeats).to_dict()


def measure_inference(onnx_bytes: bytes, batch_size: int, settings: ProfileSettings) -> dict[str, Any]:
    import onnxruntime as ort

    feeds = random_feeds(onnx_bytes, batch_size)
    options = _session_options(settings)
    on_gpu = settings.device.startswith("cuda")
    providers: list[Any] = ["CPUExecutionProvider"]
    if on_gpu:
        providers = [("CUDAExecutionProvider", {"device_id": cuda_index(settings.device)}), "CPUExecutionProvider"]
    gc.collect()
    if on_gpu:
        import torch

        # The CUDA primary context (shared by torch and onnxruntime) exists before the baseline,
        # so the memory figure is the model's (weights, arena, workspace), not the context's.
        torch.zeros(1, device=f"cuda:{cuda_index(settings.device)}")
        torch.cuda.synchronize()
        sampler = NvmlSampler(cuda_index(settings.device))
        session = ort.InferenceSession(onnx_bytes, options, providers=providers)
        if "CUDAExecutionProvider" not in session.get_providers():
            raise RuntimeError("onnxruntime has no CUDA execution provider here (install onnxruntime-gpu)")
        with sampler:
            stats = time_repeated(lambda: session.run(None, feeds), settings)
        session = None  # free the timed session before the profiling one
        return {"infer_time_ms": stats.median_ms, "infer_mem_mb": sampler.peak_growth_mb,
                "infer_sm_util": sampler.mean_util, "infer_stats": stats.to_dict(),
                "infer_operators": _operator_profile(onnx_bytes, settings, providers, feeds)}
    with RssPeakMeter() as meter:
        session = ort.InferenceSession(onnx_bytes, options, providers=providers)
        stats = time_repeated(lambda: session.run(None, feeds), settings)
    session = None  # free the timed session before the profiling one
    return {"infer_time_ms": stats.median_ms, "infer_mem_mb": meter.peak_growth_mb, "infer_stats": stats.to_dict(),
            "infer_operators": _operator_profile(onnx_bytes, settings, providers, feeds)}


def measure_training(config_json: str, settings: ProfileSettings) -> dict[str, Any]:
    """One training iteration: forward, cross-entropy on random labels, backward, SGD step."""
    import torch

    from seernet.spaces import ModelConfig, get_space

    if settings.threads > 0:  # 0: torch's own default
        torch.set_num_threads(settings.threads)
    config = ModelConfig.from_json(config_json)
    space = get_space(config.space)
    on_gpu = settings.device.startswith("cuda")
    device = torch.device(settings.device if on_gpu else "cpu")
    gc.collect()

    def run(meter_stats: list) -> None:
        model = space.build_seeded(config).train().to(device)
        inputs = space.example_input(config).to(device)
        labels = torch.randint(0, space.num_outputs(config), (config.batch_size,), device=device)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        loss_fn = torch.nn.CrossEntropyLoss()

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(inputs), labels).backward()
            optimizer.step()

        meter_stats.append(time_repeated(step, settings, _cuda_timer if on_gpu else None))

    holder: list = []
    if on_gpu:
        torch.zeros(1, device=device)  # the CUDA context exists before the baselines (as for inference)
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        with NvmlSampler(cuda_index(settings.device)) as sampler:
            run(holder)
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        return {"train_time_ms": holder[0].median_ms, "train_mem_mb": peak, "train_sm_util": sampler.mean_util,
                "train_mem_nvml_mb": sampler.peak_growth_mb, "train_stats": holder[0].to_dict()}
    with RssPeakMeter() as meter:
        run(holder)
    return {"train_time_ms": holder[0].median_ms, "train_mem_mb": meter.peak_growth_mb, "train_stats": holder[0].to_dict()}


def _cuda_timer(step) -> float:
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    step()
    end.record()
    end.synchronize()
    return float(start.elapsed_time(end))

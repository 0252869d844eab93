"""Client for the PerfSeer service: predict a model's latency and memory without running it.

    from perfseer_client import PerfSeerClient
    with PerfSeerClient("127.0.0.1:50051") as client:
        result = client.predict("resnet50.onnx", batch_size=8)
        print(result["infer_time_ms"], result.uncertainty["infer_time_ms"])
"""
from .client import PerfSeerClient, PerfSeerError, PredictionResult, model_bytes, relative_interval
from .profiler import PerfSeerProfiler

__version__ = "0.1.0"
__all__ = ["PerfSeerClient", "PerfSeerError", "PerfSeerProfiler", "PredictionResult", "model_bytes",
           "relative_interval"]

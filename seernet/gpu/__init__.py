"""GPU predictions for GPUs we do not own: a per-kernel cost model learned from NeuSight's public measurements.

Pipeline: ``specs`` (a GPU is its specification) → ``kernels`` (the measured kernels and what describes one:
dims, FLOPs, bytes, roofline, waves) → ``cost_model`` (latency of one kernel on any GPU, as a fraction of its
roofline bound) → ``workloads`` (whole models: NeuSight's torch.fx traces, or our ONNX graphs, as kernels).
"""

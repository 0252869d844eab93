"""SeerNet: ONNX model → performance graph → GNN predictions of latency, memory and utilisation."""

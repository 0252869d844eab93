"""NeuSight's workloads (Hugging Face configs) as our ONNX graphs, and whole-model predictions from them.

Each config is built with ``transformers`` from its JSON (random weights, no download; eager attention,
no KV cache) with one and with two layers, exported to ONNX with a dynamic batch and sequence length and
stripped (through a file with external data, so a model over protobuf's 2 GB limit exports too).  A model
of L layers then costs ``t(1) + (L − 1) · (t(2) − t(1))`` — the layer × count composition NeuSight uses,
without ever exporting a multi-billion-parameter network.  Needs ``transformers`` (pinned in requirements).
"""
from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

from ..settings import cache_dir
from ..strip import strip_file

LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers")
# What NeuSight actually ran, as its traces show (BERT ends in pooler + classifier, not the LM head its config names)
RUN_AS = {"bert": "BertForSequenceClassification"}
_DROP = ("architectures", "_name_or_path", "transformers_version")


def layer_count(config: dict) -> int:
    for key in LAYER_KEYS:
        if key in config:
            return int(config[key])
    raise ValueError(f"config has none of {LAYER_KEYS}: cannot tell its depth")


def build_hf(config: dict, layers: int):
    """The model of ``config`` with ``layers`` layers, as ``logits = f(input_ids)``."""
    import torch

    from ..torchvision_compat import ensure_torchvision_importable

    ensure_torchvision_importable()  # transformers imports torchvision, whose wheel needs two op schemas here
    import transformers
    from transformers import AutoConfig

    arch = RUN_AS.get(config.get("model_type", ""), (config.get("architectures") or ["AutoModel"])[0])
    cfg = AutoConfig.for_model(**{k: v for k, v in config.items() if k not in _DROP})
    for key in LAYER_KEYS:
        if hasattr(cfg, key):
            setattr(cfg, key, layers)
    cfg.use_cache = False
    model = getattr(transformers, arch)._from_config(cfg, attn_implementation="eager").eval()

    class Logits(torch.nn.Module):
        """An explicit attention mask keeps transformers' packed-sequence probe (aten::diff) out of the trace."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids):
            out = self.model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
            return out.logits if hasattr(out, "logits") else out.last_hidden_state

    return Logits()


def export_hf(config_path: str | Path, layers: int, root: Path | None = None) -> bytes:
    """Stripped ONNX of the config at ``config_path`` with ``layers`` layers (cached by name and depth)."""
    import torch

    config_path = Path(config_path)
    out = (root or cache_dir() / "hf_onnx") / f"{config_path.stem}-L{layers}.onnx"
    if out.exists():
        return out.read_bytes()
    module = build_hf(json.loads(config_path.read_text()), layers)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(module, (torch.randint(0, 100, (1, 16)),), str(path), input_names=["input_ids"],
                          output_names=["logits"], dynamic_axes={"input_ids": {0: "batch", 1: "seq"}},
                          opset_version=17, dynamo=False)
        data = strip_file(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return data


def predict_hf(predictor, config_path: str | Path, gpu, batch: int, seq: int, mode: str = "inf") -> float:
    """Whole-model latency (ms) of the workload on ``gpu``: forward (``inf``) or forward + backward (``train``)."""
    depth = layer_count(json.loads(Path(config_path).read_text()))
    key = "train_time_ms" if mode == "train" else "infer_time_ms"
    one, two = (predictor.predict(export_hf(config_path, k), gpu, batch, {"seq": seq})[key] for k in (1, 2))
    return one + (depth - 1) * (two - one)

"""Any ONNX a user brings: a corpus of real architectures exported here builds, every one of them.

106 timm image models (one or more per timm family, from the screened table; ``pretrained=False``) and 26
Hugging Face transformers models built from configs (twelve text model types with a dynamic sequence length,
ViT, Swin, ConvNeXt, BEiT and DeiT vision models): each is exported with random weights (without the exporter's constant folding, so its weights are the
module's own parameters), built into our graph, and checked against the torch model itself — parameters
within 1 % of those the forward reads (and float buffers, which the ONNX holds as weights), and the MACs of our Conv,
Gemm and MatMul nodes within 15 % of torch's own FLOP counter (``torch.utils.flop_counter``), an independent
count made on the module, not on the ONNX; built on the fast lane, equal to the whole-model path's graph; and
predicted by the served network (onnxruntime) as each member's own forward predicts it.  Exports are cached,
weight-stripped, under ``.cache/corpus-stripped`` (``PERFSEER_CACHE``).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re

import pytest
import torch

from seernet.export import export_module
from seernet.graph import NODE_FEATURES, build_graph, reference_graph
from seernet.settings import cache_dir
from seernet.spaces.timm_space import arch_table
from seernet.strip import strip_bytes
from seernet.torchvision_compat import ensure_torchvision_importable
from tests.seernet.test_fast_graph import assert_same

TIMM_COUNT = 106
MAX_PARAMS = 40e6  # keeps the corpus's exports to a second or two each on one core
SMALL_RESOLUTION = 64  # archs without a fixed input size are exported at this side
PARAMS_TOLERANCE = 0.01
MACS_TOLERANCE = 0.15
MAC_OPS = ("Conv", "Gemm", "MatMul", "ConvTranspose")


def timm_corpus(count: int = TIMM_COUNT) -> list[str]:
    """The smallest architecture of each timm family (name up to its first digit or underscore), then the next
    smallest of each, round-robin, until ``count``: deterministic, and as spread over families as it can be."""
    families: dict[str, list[dict]] = {}
    for entry in sorted(arch_table().values(), key=lambda e: (e["params"], e["name"])):
        if entry["params"] <= MAX_PARAMS:
            families.setdefault(re.match(r"[a-z]+", entry["name"]).group(0), []).append(entry)
    chosen: list[str] = []
    depth = 0
    while len(chosen) < count and any(len(v) > depth for v in families.values()):
        for family in sorted(families):
            if depth < len(families[family]) and len(chosen) < count:
                chosen.append(families[family][depth]["name"])
        depth += 1
    return chosen


def _text(model_type: str, **sizes: int) -> tuple[str, dict]:
    arch = {"model_type": model_type, "hidden": 64, "layers": 2, "heads": 4, "intermediate": 128,
            "vocab_size": 1000, **sizes}
    return f"{model_type}-h{arch['hidden']}-l{arch['layers']}", arch


HF_TEXT = [_text(kind) for kind in ("albert", "bert", "deberta-v2", "distilbert", "electra", "roberta", "t5", "gpt2",
                                    "gpt_neox", "llama", "mistral", "qwen2")] + \
          [_text(kind, hidden=128, layers=3, heads=8, intermediate=256) for kind in
           ("albert", "bert", "deberta-v2", "distilbert", "electra", "roberta", "t5", "gpt2", "gpt_neox", "llama",
            "mistral", "qwen2")]
HF_TEXT[-3][1]["kv_heads"] = 2  # grouped-query attention
HF_VISION = [
    ("vit", {"model_type": "vit", "hidden_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
             "intermediate_size": 192, "image_size": 64, "patch_size": 8}),
    ("deit", {"model_type": "deit", "hidden_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
              "intermediate_size": 192, "image_size": 64, "patch_size": 8}),
    ("beit", {"model_type": "beit", "hidden_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
              "intermediate_size": 192, "image_size": 64, "patch_size": 8, "use_relative_position_bias": True}),
    ("swin", {"model_type": "swin", "embed_dim": 32, "depths": [2, 2], "num_heads": [2, 4], "image_size": 64,
              "patch_size": 4, "window_size": 4}),
    ("convnext", {"model_type": "convnext", "hidden_sizes": [32, 64], "depths": [1, 1], "num_stages": 2,
                  "image_size": 64}),
]
HF_VISION_RESOLUTION = 64


def _randomise(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights and BatchNorm statistics: fresh zero biases and unit norms are identical tensors the
    exporter shares, which would hide parameters from any counter."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.02)
            p.requires_grad_(False)  # torch's FLOP counter hooks autograd on parameters a forward reads directly
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=generator))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=generator) + 0.5)
    return module.eval()


def _export(key: str, module: torch.nn.Module, example: torch.Tensor, axes: dict) -> bytes:
    """The weight-stripped export (what a client sends; the same graph as the full file): the corpus's full
    exports came to 5.7 GB, enough to fill a CI machine's disk, its stripped ones to a few MB."""
    path = cache_dir() / "corpus-stripped" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.onnx"
    if path.exists():
        return path.read_bytes()
    data = strip_bytes(export_module(module, example, dynamic_axes=axes, constant_folding=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return data


def _torch_macs(module: torch.nn.Module, example: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(example)
    return counter.get_total_flops() / 2.0


def used_parameters(module: torch.nn.Module, example: torch.Tensor) -> int:
    """Elements of the parameters the forward reads (a BERT pooler the classifier never calls is not in the
    graph), found by which of them a backward pass reaches."""
    params = list(module.parameters())
    for p in params:
        p.requires_grad_(True)
        p.grad = None
    module(example).float().sum().backward()
    used = sum(p.numel() for p in params if p.grad is not None)
    # float buffers other than BatchNorm's statistics (ConViT's positional indices) are initializers in the
    # ONNX, indistinguishable there from weights
    used += sum(b.numel() for m in module.modules() if not isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                for b in m.buffers(recurse=False) if b.is_floating_point() and b.numel() > 1)
    for p in params:
        p.requires_grad_(False)
        p.grad = None
    return used


def _check(module: torch.nn.Module, data: bytes, example: torch.Tensor, dims: dict | None = None) -> None:
    graph = build_graph(data, batch_size=example.shape[0], dims=dims)
    assert graph.fast_lane  # and it is the graph the whole-model path builds:
    assert_same(graph, reference_graph(data, batch_size=example.shape[0], dims=dims))
    assert graph.summary()["params"] == pytest.approx(used_parameters(module, example), rel=PARAMS_TOLERANCE)
    macs = graph.node_x[:, NODE_FEATURES.index("macs")]
    ours = float(sum(m for m, op in zip(macs, graph.op_types) if op in MAC_OPS))
    assert ours == pytest.approx(_torch_macs(module, example), rel=MACS_TOLERANCE)
    _assert_served_like_each_member(graph)


def _assert_served_like_each_member(graph) -> None:
    """The served network (the ensemble exported to onnxruntime) computes on a real architecture what each
    member's own forward computes."""
    import numpy as np

    from seernet.inference_batch import InferenceBatch
    from seernet.predictor import inference_plan

    predictor = _shipped()
    batch = InferenceBatch.from_graphs([graph], predictor.features)
    plan = inference_plan(batch, predictor.members[0].config.layers)
    with torch.inference_mode():
        alone = np.stack([m(batch, plan).numpy() for m in predictor.members])
    np.testing.assert_allclose(predictor.exported()(batch, plan), alone, rtol=1e-5, atol=1e-4)


@functools.lru_cache(maxsize=1)
def _shipped():
    from seernet.predictor import Predictor
    from tests.conftest import SHIPPED_PREDICTOR

    return Predictor.load(SHIPPED_PREDICTOR)


TIMM = timm_corpus()


def test_the_corpus_holds_over_a_hundred_real_architectures_across_families():
    assert len(TIMM) == TIMM_COUNT and len(set(TIMM)) == len(TIMM)
    assert len({re.match(r"[a-z]+", n).group(0) for n in TIMM}) >= 60
    assert len(TIMM) + len(HF_TEXT) + len(HF_VISION) >= 130


@pytest.mark.parametrize("name", TIMM)
def test_timm_architecture_builds_with_its_parameters_and_macs(name):
    ensure_torchvision_importable()
    import timm

    timm.layers.set_fused_attn(False)  # torch's FLOP counter does not see the CPU's fused attention kernel
    entry = arch_table()[name]
    side = entry["resolution"] if entry["fixed_input_size"] else SMALL_RESOLUTION
    torch.manual_seed(0)
    module = _randomise(timm.create_model(name, pretrained=False), seed=1)
    example = torch.randn(1, 3, side, side)
    data = _export(f"timm:{name}:{side}:{timm.__version__}", module, example,
                   {"input": {0: "batch"}, "output": {0: "batch"}})
    _check(module, data, example)


@pytest.mark.parametrize("name,arch", HF_TEXT, ids=[n for n, _ in HF_TEXT])
def test_hugging_face_text_model_builds_at_any_sequence_length(name, arch):
    from seernet.spaces.hf_space import HFClassifier

    torch.manual_seed(0)
    module = _randomise(HFClassifier(arch), seed=2)
    data = _export(f"hf:{json.dumps(arch, sort_keys=True)}", module, torch.randint(0, 1000, (1, 16)),
                   {"input": {0: "batch", 1: "seq"}, "output": {0: "batch"}})
    _check(module, data, torch.randint(0, 1000, (2, 48)), dims={"seq": 48})  # not the traced length


@pytest.mark.parametrize("name,config", HF_VISION, ids=[n for n, _ in HF_VISION])
def test_hugging_face_vision_model_builds(name, config):
    ensure_torchvision_importable()
    import transformers

    class Pixels(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            cfg = transformers.AutoConfig.for_model(**config)
            self.model = transformers.AutoModel.from_config(cfg, attn_implementation="eager")

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            return self.model(pixel_values=pixels).last_hidden_state

    torch.manual_seed(0)
    module = _randomise(Pixels(), seed=3)
    example = torch.randn(1, 3, HF_VISION_RESOLUTION, HF_VISION_RESOLUTION)
    data = _export(f"hfv:{json.dumps(config, sort_keys=True)}", module, example, {"input": {0: "batch"}})
    _check(module, data, example)

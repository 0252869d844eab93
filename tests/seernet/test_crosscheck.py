"""Our counters against torchvision's published figures and the independent onnx-tool counter."""
from __future__ import annotations

import contextlib
import io

import numpy as np
import onnx
import pytest
import torch

from seernet.export import export_module
from seernet.graph import NODE_FEATURES, build_graph
from seernet.zoo import PUBLISHED, ZOO

onnx_tool = pytest.importorskip("onnx_tool")


def randomized(name: str) -> tuple[torch.nn.Module, bytes]:
    """Export with random weights *and* BN statistics: fresh BN layers fold into identical zero
    biases that the exporter de-duplicates, which would hide parameters from any counter."""
    build, example = ZOO[name]
    torch.manual_seed(0)
    module = build()
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.02)
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    return module, export_module(module, example(2))


def bn_channels(module: torch.nn.Module) -> int:
    return sum(m.num_features for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d))


def onnx_tool_profile(data: bytes, shape: tuple[int, ...], dtype=np.float32):
    model = onnx_tool.Model(onnx.load_from_string(data))
    model.graph.shape_infer({"input": np.zeros(shape, dtype)})
    with contextlib.redirect_stdout(io.StringIO()):
        model.graph.profile()
    return model.graph


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_against_torchvision_published_figures(name):
    module, data = randomized(name)
    graph = build_graph(data)
    params, gmacs = PUBLISHED[name]
    # the exporter folds each BatchNorm (2·C parameters) into its Conv's bias (C parameters)
    assert sum(p.numel() for p in module.parameters()) == params
    assert graph.summary()["params"] == params - bn_channels(module)
    assert graph.summary()["macs"] / 1e9 == pytest.approx(gmacs, rel=0.01)


@pytest.mark.parametrize("name,shape", [("resnet18", (1, 3, 224, 224)), ("mobilenet_v2", (1, 3, 224, 224)),
                                        ("vit_tiny_patch16_224", (1, 3, 224, 224))])
def test_against_onnx_tool(name, shape):
    """Per Conv/Gemm/MatMul operator, and total parameters.

    onnx-tool counts a bias add as one more MAC per output; our FLOPs are 2·MACs plus
    the bias adds, so ``FLOPs − MACs`` is exactly onnx-tool's MACs.
    """
    module, data = randomized(name)
    graph = build_graph(data)
    reference = onnx_tool_profile(data, shape)
    macs = graph.node_x[:, NODE_FEATURES.index("macs")]
    flops = graph.node_x[:, NODE_FEATURES.index("flops")]
    checked = 0
    for node_name, op, ours in zip(graph.node_names, graph.op_types, flops - macs):
        if op in ("Conv", "Gemm", "MatMul"):
            theirs = reference.nodemap[node_name].macs
            theirs = theirs[0] if isinstance(theirs, (list, tuple)) else theirs
            assert ours == pytest.approx(theirs, rel=1e-6), node_name
            checked += 1
    assert checked >= 20
    assert graph.summary()["params"] == pytest.approx(reference.params, rel=1e-3)

"""torch → ONNX with a symbolic batch dimension, so one file serves every batch size."""
from __future__ import annotations

import io
import warnings

import onnx
import torch
from torch import nn

from .spaces import ModelConfig, get_space

OPSET = 17


def export_module(module: nn.Module, example_input: torch.Tensor, dynamic_batch: bool = True,
                  dynamic_axes: dict | None = None, constant_folding: bool = True) -> bytes:
    """Serialised ONNX of ``module`` in eval mode; dim 0 of input and output is named ``batch`` (or the
    ``dynamic_axes`` given, e.g. a text model's ``seq`` too).  ``constant_folding=False`` keeps the module's
    parameters as the file's weights (folded, a BatchNorm becomes part of its conv).

    Uses the TorchScript exporter (``dynamo=False``): the default one needs onnxscript.
    """
    module = module.eval()
    buffer = io.BytesIO()
    axes = dynamic_axes or ({"input": {0: "batch"}, "output": {0: "batch"}} if dynamic_batch else None)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example_input,), buffer, input_names=["input"], output_names=["output"],
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False, do_constant_folding=constant_folding)
    return buffer.getvalue()


EXPORT_BATCH = 2  # traced at a small fixed batch: the batch is symbolic in the file and bound when the graph is built


def export_config(config: ModelConfig) -> bytes:
    """The ONNX of a space config (batch left symbolic), traced at ``EXPORT_BATCH`` whatever the config's batch:
    the cost of an export must not grow with the batch a request asks for."""
    space = get_space(config.space)
    module = space.build_seeded(config)
    return export_module(module, space.example_input(config.with_batch(EXPORT_BATCH)))


def export_config_proto(config: ModelConfig) -> onnx.ModelProto:
    return onnx.load_from_string(export_config(config))

"""Weight stripping: keep every tensor's name, type and dims, drop the bytes of large float weights.

Cost depends on shapes, not values, so a stripped model gives exactly the same
graph as the full one, and a ResNet-50 request is kilobytes instead of 100 MB.
Integer tensors (Reshape shapes, Gather indices, Slice bounds) and small
tensors are kept: shape inference reads their values.

Lives in the client package because clients strip before sending; the server
side (``seernet.strip``) re-exports it, so both strip identically.  Needs the
``onnx`` package (the client's ``[onnx]`` extra).
"""
from __future__ import annotations

import onnx

FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}
DEFAULT_MIN_BYTES = 1024
STRIPPED_KEY = "perfseer.stripped"

_DATA_FIELDS = ("raw_data", "float_data", "double_data", "int32_data", "int64_data", "uint64_data", "string_data")


def tensor_nbytes(tensor: onnx.TensorProto) -> int:
    numel = 1
    for d in tensor.dims:
        numel *= d
    return numel * _itemsize(tensor.data_type)


def _itemsize(data_type: int) -> int:
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(data_type).itemsize
    except (KeyError, TypeError, ValueError):
        return 4


def is_strippable(tensor: onnx.TensorProto, min_bytes: int = DEFAULT_MIN_BYTES) -> bool:
    return tensor.data_type in FLOAT_TYPES and tensor_nbytes(tensor) >= min_bytes


def _strip_tensor(tensor: onnx.TensorProto) -> None:
    for name in _DATA_FIELDS:
        tensor.ClearField(name)


def strip_weights(model: onnx.ModelProto, min_bytes: int = DEFAULT_MIN_BYTES,
                  in_place: bool = False) -> onnx.ModelProto:
    """``model`` without the data of float tensors of ``min_bytes`` or more: a copy, or ``model`` itself
    with ``in_place`` (no copy of the weights about to be dropped, when the caller is done with them)."""
    stripped = model
    if not in_place:
        stripped = onnx.ModelProto()
        stripped.CopyFrom(model)
    for tensor in stripped.graph.initializer:
        if is_strippable(tensor, min_bytes):
            _strip_tensor(tensor)
    for node in stripped.graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR and is_strippable(attr.t, min_bytes):
                _strip_tensor(attr.t)
    entry = next((p for p in stripped.metadata_props if p.key == STRIPPED_KEY), None) or stripped.metadata_props.add()
    entry.key, entry.value = STRIPPED_KEY, "1"
    return stripped


def strip_bytes(data: bytes, min_bytes: int = DEFAULT_MIN_BYTES) -> bytes:
    return strip_weights(onnx.load_from_string(data), min_bytes).SerializeToString()

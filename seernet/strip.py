"""Weight stripping (see :mod:`perfseer_client.strip`, shared with the client so both strip identically).

``strip_file`` also takes models saved with external data (torch writes one for any model over
protobuf's 2 GB limit): float weights become headers without ever being read; the few non-float
tensors stored outside (shape-like integers) are read back in, as they may decide shapes.
"""
from pathlib import Path

import onnx
from onnx.external_data_helper import load_external_data_for_tensor

from perfseer_client.strip import (DEFAULT_MIN_BYTES, FLOAT_TYPES, STRIPPED_KEY, is_strippable, strip_bytes,
                                   strip_weights, tensor_nbytes)


def strip_file(path: str | Path) -> bytes:
    """The stripped bytes of the ONNX file at ``path``, with or without external data beside it."""
    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    for tensor in model.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        if tensor.data_type in FLOAT_TYPES:
            del tensor.external_data[:]
            tensor.data_location = onnx.TensorProto.DEFAULT  # a header: dims and type only
        else:
            load_external_data_for_tensor(tensor, str(path.parent))
            del tensor.external_data[:]
            tensor.data_location = onnx.TensorProto.DEFAULT
    return strip_weights(model).SerializeToString()


__all__ = ["DEFAULT_MIN_BYTES", "FLOAT_TYPES", "STRIPPED_KEY", "is_strippable", "strip_bytes", "strip_file",
           "strip_weights", "tensor_nbytes"]

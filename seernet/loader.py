"""Turn a path, bytes or ``onnx.ModelProto`` into a validated model, refusing what we must not touch.

The loader never follows external-data references: a request can name any path
in them, and opening it would let a client read the server's files.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Union

import onnx
from google.protobuf.message import DecodeError

from .errors import (ExternalDataError, GraphBuildError, LimitExceededError, ModelTooLargeError, NotOnnxError,
                     TooManyNodesError, clip)
from .settings import DEFAULT_LIMITS, Limits

ModelSource = Union[str, Path, bytes, bytearray, memoryview, onnx.ModelProto]

MAX_KNOWN_OPSET = onnx.defs.onnx_opset_version()


_SUBGRAPH_OPS = {"If", "Loop", "Scan", "SequenceMap"}


def _iter_graphs(graph: onnx.GraphProto) -> Iterable[onnx.GraphProto]:
    yield graph
    for node in graph.node:
        if node.op_type not in _SUBGRAPH_OPS and node.domain in ("", "ai.onnx"):
            continue  # only control-flow operators carry subgraphs in the standard domain
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _iter_graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from _iter_graphs(sub)


_TENSOR_ATTR_OPS = {"ConstantOfShape"}


def _iter_tensors(graph: onnx.GraphProto) -> Iterable[onnx.TensorProto]:
    for g in _iter_graphs(graph):
        yield from g.initializer
        for sparse in g.sparse_initializer:
            yield sparse.values
        for node in g.node:
            if node.op_type != "Constant" and node.domain in ("", "ai.onnx") and node.op_type not in _TENSOR_ATTR_OPS:
                continue
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.TENSOR:
                    yield attr.t
                elif attr.type == onnx.AttributeProto.TENSORS:
                    yield from attr.tensors


def check_no_external_data(model: onnx.ModelProto) -> None:
    for tensor in _iter_tensors(model.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data) > 0:
            location = next((e.value for e in tensor.external_data if e.key == "location"), "?")
            raise ExternalDataError(
                f"tensor {tensor.name!r} refers to external data ({location!r}); external-data models are refused: "
                "send the model with weights embedded or stripped (perfseer_client strips them)")


def check_header(model: onnx.ModelProto, limits: Limits) -> None:
    """What is known without visiting operators: a graph with operators, IR version and opsets, and the
    counts of top-level operators and graph inputs and outputs."""
    if not model.HasField("graph") or len(model.graph.node) == 0:
        raise NotOnnxError("not an ONNX model: no graph with operators")
    if model.ir_version <= 0 or len(model.opset_import) == 0:
        raise NotOnnxError("not an ONNX model: missing IR version or opset imports")
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and not 1 <= opset.version <= MAX_KNOWN_OPSET:
            raise GraphBuildError(f"model imports ONNX opset {opset.version}; this server knows opsets 1.."
                                  f"{MAX_KNOWN_OPSET}")
    _check_node_count(len(model.graph.node), limits)
    graph_io = len(model.graph.input) + len(model.graph.output)
    if graph_io > limits.max_graph_inputs:
        raise LimitExceededError(f"model has {graph_io:,} graph inputs and outputs, over the "
                                 f"{limits.max_graph_inputs:,} limit (max_graph_inputs)")


def _check_node_count(nodes: int, limits: Limits) -> None:
    if nodes > limits.max_nodes:
        raise TooManyNodesError(f"model has {nodes:,} operators, over the {limits.max_nodes:,}-operator limit")


def check_structure(model: onnx.ModelProto, limits: Limits) -> None:
    """Counts that bound the cost of everything after parsing: operators (sub-graphs' too), each operator's
    inputs and outputs, edges.

    Checked before shape inference, which is the first step whose cost grows
    with them (a 2-operator model with 300,000 inputs once cost 5.7 CPU-s).
    """
    graphs = list(_iter_graphs(model.graph))
    _check_node_count(sum(len(g.node) for g in graphs), limits)
    edges = 0
    for g in graphs:
        for node in g.node:
            fan = len(node.input) + len(node.output)
            if fan > limits.max_node_inputs:
                raise LimitExceededError(f"operator {clip(node.name)!r} ({clip(node.op_type)}) has {fan:,} inputs "
                                         f"and outputs, over the {limits.max_node_inputs:,} limit (max_node_inputs)")
            edges += len(node.input)
    if edges > limits.max_edges:
        raise LimitExceededError(f"model has {edges:,} operator inputs, over the {limits.max_edges:,} limit "
                                 "(max_edges)")


def check_model(model: onnx.ModelProto, limits: Limits) -> None:
    """Every check on a parsed model's operators and tensors (:func:`parse_model` made the cheap ones)."""
    check_structure(model, limits)
    check_no_external_data(model)


def load_model(source: ModelSource, limits: Limits | None = None) -> onnx.ModelProto:
    """A parsed, checked ModelProto; raises a :class:`~seernet.errors.GraphBuildError` subtype otherwise."""
    limits = limits or DEFAULT_LIMITS
    model = parse_model(source, limits)
    check_model(model, limits)
    return model


def parse_model(source: ModelSource, limits: Limits | None = None) -> onnx.ModelProto:
    """A parsed ModelProto within the byte limit, its header checked (:func:`check_header`), its operators
    not yet visited: the caller runs :func:`check_model`, or visits each operator once itself with the
    same limits (``seernet.fast_graph``) and runs :func:`check_model` wherever it stops."""
    limits = limits or DEFAULT_LIMITS
    max_bytes = limits.max_model_bytes
    if isinstance(source, onnx.ModelProto):
        model = source
        size = _payload_bytes(model)
        if size > max_bytes:
            raise ModelTooLargeError(f"model is {size:,} bytes, over the {max_bytes:,}-byte limit")
    else:
        data = _read_bytes(source, max_bytes)
        try:
            model = onnx.ModelProto.FromString(data)
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise NotOnnxError(f"not an ONNX model: protobuf parse failed ({exc})") from None
    check_header(model, limits)
    return model


def _payload_bytes(model: onnx.ModelProto) -> int:
    """Bytes of tensor data in an in-memory model: its serialised size less a few bytes per field.

    ``ModelProto.ByteSize()`` walks every byte (250 ms for ResNet-50); the
    weights are what make a model large, and their lengths are known at once.
    """
    from .strip import tensor_nbytes

    total = 0
    for tensor in _iter_tensors(model.graph):
        # reading ``raw_data`` would copy it: a tensor with any data holds dims × itemsize bytes
        if tensor.HasField("raw_data") or len(tensor.float_data) or len(tensor.int32_data) or len(tensor.int64_data) \
                or len(tensor.double_data) or len(tensor.uint64_data):
            total += tensor_nbytes(tensor)
    return total


PROTOBUF_LIMIT = 2**31 - 1  # no serialised ONNX is larger (bigger models keep their weights as external data)


def local_model(path: str | Path, limits: Limits | None = None) -> Path | bytes:
    """A model file on the user's own machine, ready for :func:`load_model`: the path itself, or, when the file is
    over ``limits.max_model_bytes``, its bytes with large weights stripped here first, as ``perfseer_client`` strips
    before sending (GPT-2 in FP32 is a 0.5 GB file and a 1 MB stripped one).  The limit bounds what a request costs
    the service; a file the user predicts locally costs only its own machine the one parse.  A file that is not
    ONNX, or still over the limit once stripped, is refused as :func:`load_model` refuses it."""
    from .strip import strip_weights

    path = Path(path)
    size = path.stat().st_size
    if size <= (limits or DEFAULT_LIMITS).max_model_bytes:
        return path
    if size > PROTOBUF_LIMIT:
        raise ModelTooLargeError(f"{path} is {size:,} bytes, over protobuf's 2 GiB: export it with its weights as "
                                 "external data (onnx.save_model(..., save_as_external_data=True)) and predict the .onnx")
    try:
        model = onnx.ModelProto.FromString(path.read_bytes())
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise NotOnnxError(f"{path} is not an ONNX model: protobuf parse failed ({exc})") from None
    return strip_weights(model, in_place=True).SerializeToString()


def _read_bytes(source: ModelSource, max_bytes: int) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, Path)):
        path = Path(source)
        size = path.stat().st_size
        if size > max_bytes:
            raise ModelTooLargeError(f"{path} is {size:,} bytes, over the {max_bytes:,}-byte limit")
        data = path.read_bytes()
    else:
        raise TypeError(f"cannot load a model from {type(source).__name__}")
    if len(data) > max_bytes:
        raise ModelTooLargeError(f"model is {len(data):,} bytes, over the {max_bytes:,}-byte limit")
    if not data:
        raise NotOnnxError("not an ONNX model: empty input")
    return data

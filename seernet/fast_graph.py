"""The ONNX path's fast lane: shapes and operator rows found together, one memo lookup per operator.

Why: the whole-model path (onnx's shape inference, then every tensor's shape collected, then a
signature and a cost per operator) spends ~4 ms on a 140-operator NAS-Bench-201 cell, and a NAS loop
sends thousands of such cells made of the same few dozen operators.  An operator's output shapes and
its feature row depend only on its type, its attributes and its inputs' *tokens* (shape, element type,
weight or not, and the values of small tensors that compute shapes), so both are remembered under one
key: a cell whose operators were all seen before costs one dictionary lookup per operator.  A miss is
answered by a shape rule (``seernet.shape_rules``: the commonest operators in a few µs), by folding shape
arithmetic with numpy as ``seernet.shapes`` does for whole models, or else by onnx inferring that one
operator alone (~40-100 µs).

Whatever this lane does not handle exactly returns None, and :func:`seernet.graph.build_graph` takes the
whole-model path, which gives the same graph or the same one-line refusal: custom domains, sub-graphs
and functions, declared intermediate shapes, a fixed batch being re-bound, an input it cannot bind, an
operator whose output onnx cannot infer alone, a tensor over a limit, a name read before it is written
or written twice.  Tests compare both paths on our spaces and on real timm and Hugging Face models.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

from .budget import CpuBudget
from .costs import Op, attributes, node_cost, param_inputs, parameter_elements
from .folding import Sources, bytes_written_at_load, folded_sources, folds, new_parameters, sources_lookup
from .graph import NODE_FEATURES, EDGE_FEATURES, PerfGraph, edge_features, graph_from_rows, node_row
from .settings import Limits
from .shape_rules import output_shapes
from .shapes import TensorInfo, constant_value, fold_value, initializer_value, shape_value

_STANDARD = ("", "ai.onnx")
_SUBGRAPH_ATTRIBUTES = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)


class Token:
    """What an operator's cost and outputs can depend on about one input: its shape and type (``info``),
    whether it is a weight, and its value when it is a small tensor that shape arithmetic reads.  Tokens
    are interned, so equal tokens are the same object and a key of tokens hashes by identity."""

    __slots__ = ("info", "weight", "value", "edge_row")

    def __init__(self, info: TensorInfo, weight: bool, value: np.ndarray | None) -> None:
        self.info, self.weight, self.value = info, weight, value
        self.edge_row: bytes | None = None  # its row of edge features, as float64 bytes


class Decoded:
    """One operator's fields, read from its protobuf once: field access on a parsed protobuf costs ~0.4 µs
    each, serialising the whole operator ~0.8 µs, so operators are remembered by their bytes (a NAS
    space's exports repeat the same operators, names and all, from one candidate to the next)."""

    __slots__ = ("op_type", "domain", "name", "inputs", "outputs", "kind", "constant")

    def __init__(self, node: onnx.NodeProto) -> None:
        self.op_type, self.domain, self.name = node.op_type, node.domain, node.name
        self.inputs, self.outputs = tuple(node.input), tuple(node.output)
        attributes = tuple(a.SerializeToString() for a in node.attribute)
        self.kind = (self.op_type, self.domain, attributes, tuple(bool(name) for name in self.outputs))
        self.constant: Token | None = None  # a Constant's output token, set once computed


class OperatorMemo:
    """Interned tokens, decoded operators and initializers by their bytes, and per operator key (kind,
    input tokens) its (output tokens, feature row as bytes, parameter column, parameter inputs).

    Bounded (~60 MB at most with the defaults, a few MB in practice): past ``max_tokens`` tokens or
    ``max_value_bytes`` of remembered values everything starts over; past ``max_entries`` entries (or
    ``max_decoded_total`` bytes of keys) the decoded and operator tables each do.  A key holds its tokens, so an
    entry stays right whatever was reset since it was made.  One memo per set of limits (:func:`memo_for`):
    what an entry admits depends on them."""

    def __init__(self, max_tokens: int = 2**16, max_value_bytes: int = 16 * 2**20, max_entries: int = 2**14,
                 max_decoded_bytes: int = 1024, max_decoded_total: int = 16 * 2**20) -> None:
        self.max_tokens, self.max_value_bytes, self.max_entries = max_tokens, max_value_bytes, max_entries
        self.max_decoded_bytes, self.max_decoded_total = max_decoded_bytes, max_decoded_total
        self.reset()

    def reset(self) -> None:
        self.tokens: dict[tuple, Token] = {}
        self.operators: dict[tuple, tuple] = {}
        self.decoded: dict[bytes, object] = {}
        self.attributes: dict[tuple, dict | None] = {}
        self.value_bytes = self.decoded_bytes = 0

    def token(self, shape: tuple[int, ...], elem_type: int, weight: bool, value: np.ndarray | None = None,
              limits: Limits | None = None) -> Token | None:
        """The one token for these facts; None when the tensor is over a size limit (the whole-model path
        then names it in its refusal)."""
        value_key = None if value is None else (value.dtype.str, value.tobytes())
        key = (shape, elem_type, weight, value_key)
        found = self.tokens.get(key)
        if found is not None:
            return found
        info = TensorInfo(shape, elem_type)
        if limits is not None and (len(shape) > limits.max_rank or not info.known
                                   or info.numel > limits.max_tensor_elements):
            return None
        if len(self.tokens) >= self.max_tokens or self.value_bytes > self.max_value_bytes:
            self.reset()
        if value_key is not None:
            self.value_bytes += len(value_key[1])
        found = self.tokens[key] = Token(info, weight, value)
        return found

    def attributes_of(self, node: onnx.NodeProto, serialized: tuple[bytes, ...]) -> dict | None:
        """``node``'s attributes decoded (~1.5 µs each), or None where the lane does not take them (sub-graphs,
        tensor lists, external tensors); remembered by their bytes when small: operators with new names and
        shapes still share them (every 3×3 stride-1 convolution of a space has the same).  Callers only read
        the dict."""
        if serialized in self.attributes:
            return self.attributes[serialized]
        found = None if any(a.type in _SUBGRAPH_ATTRIBUTES or a.type == onnx.AttributeProto.TENSORS
                            or (a.type == onnx.AttributeProto.TENSOR and _external(a.t))
                            for a in node.attribute) else attributes(node)
        if sum(map(len, serialized)) <= self.max_decoded_bytes:
            if len(self.attributes) >= self.max_entries:
                self.attributes = {}
            self.attributes[serialized] = found
        return found

    def remember(self, key: tuple, entry: tuple) -> None:
        if len(self.operators) >= self.max_entries:
            self.operators = {}
        self.operators[key] = entry

    def decode(self, data: bytes, found: object) -> None:
        """Remember ``found``, decoded from ``data`` (an operator's or initializer's bytes), when they are small."""
        if len(data) <= self.max_decoded_bytes:
            if len(self.decoded) >= self.max_entries or self.decoded_bytes > self.max_decoded_total:
                self.decoded, self.decoded_bytes = {}, 0
            self.decoded[data] = found
            self.decoded_bytes += len(data)


_MEMOS: dict[tuple, OperatorMemo] = {}


def memo_for(limits: Limits) -> OperatorMemo:
    """The memo for these limits (a server has one set; tests try several)."""
    key = (limits.max_rank, limits.max_tensor_elements, limits.max_fold_elements, limits.max_node_inputs)
    memo = _MEMOS.get(key)
    if memo is None:
        if len(_MEMOS) >= 4:
            _MEMOS.clear()
        memo = _MEMOS[key] = OperatorMemo()
    return memo


def clear_memos() -> None:
    """Forget everything remembered (benchmarks measure a first sight with it)."""
    _MEMOS.clear()


def fast_graph(model: onnx.ModelProto, batch_size: int, dims: dict[str, int] | None, training: bool,
               limits: Limits, budget: CpuBudget, started: float, memo: OperatorMemo | None = None) -> PerfGraph | None:
    """The graph :func:`seernet.graph.build_graph` would build, or None where only the whole-model path can
    tell (module docstring).  ``model`` was parsed by ``seernet.loader.parse_model`` and its ``dims`` checked;
    this pass makes the loader's per-operator checks itself (inputs per operator, edges, external data) and
    leaves every refusal to the whole-model path."""
    graph = model.graph
    if len(graph.value_info) or len(model.functions) or len(graph.sparse_initializer):
        return None
    memo = memo or memo_for(limits)
    tok_of: dict[str, Token] = {}
    if not _bind_initializers(graph, memo, limits, tok_of):
        return None
    bound = dict(dims or {})
    inputs = _bind_inputs(model, batch_size, bound, memo, limits, tok_of)
    if inputs is None:
        return None

    opsets = None
    decoded_nodes, rows, fixes, producer = [], [], [], {}
    src, dst, edge_rows = [], [], []
    counted: set[str] = set()
    sources: dict[str, Sources] = {}  # weights computed at load (seernet.folding): their parameters
    sources_of = sources_lookup(sources, lambda name: parameter_elements(tok_of[name].info))
    edges = folded = 0
    folded_bytes = 0.0
    operators, decoded = memo.operators, memo.decoded
    for index, node in enumerate(graph.node):
        if index % 512 == 0:
            budget.check("operator costs")
        data = node.SerializeToString()
        d = decoded.get(data)
        if d is None:
            d = Decoded(node)
            if len(d.inputs) + len(d.outputs) > limits.max_node_inputs:
                return None
            memo.decode(data, d)
        if d.op_type == "Constant":
            token = d.constant or _constant_token(node, d, memo, limits)
            if token is None or d.outputs[0] in tok_of:
                return None
            tok_of[d.outputs[0]] = token
            continue
        names = d.inputs
        edges += len(names)
        if edges > limits.max_edges:
            return None
        try:
            in_tokens = tuple([tok_of[name] if name else None for name in names])
        except KeyError:  # read before written: a cycle, or a tensor nothing defines
            return None
        key = (d.kind, in_tokens)
        entry = operators.get(key)
        if entry is None:
            opsets = opsets or tuple((o.domain, o.version) for o in model.opset_import)
            entry = _operator_entry(node, d, in_tokens, opsets, memo, limits)
            if entry is None:
                return None
            memo.remember(key, entry)
        out_tokens, row, row_params, candidates, at_load = entry
        loaded = at_load is not None and not training  # computed at load: its outputs are weights (seernet.folding)
        carried = folded_sources(d.op_type, names, sources_of) if loaded else ()
        j = len(decoded_nodes)
        for name, token in zip(d.outputs, at_load if loaded else out_tokens):
            if name:
                if name in tok_of:
                    return None
                tok_of[name] = token
                if loaded:
                    sources[name] = carried
                else:
                    producer[name] = j
        if loaded:
            folded += 1
            written = [token.info.nbytes for name, token in zip(d.outputs, at_load) if name]
            folded_bytes += bytes_written_at_load(d.op_type, written)
            continue
        for name in names:
            i = producer.get(name)
            if i is not None:
                src.append(i)
                dst.append(j)
                edge_rows.append(_edge_row(tok_of[name]))
        if candidates:
            params = 0.0
            for position, numel in candidates:
                params += new_parameters(names[position], numel, sources, counted)
            if params != row_params:
                fixes.append((j, params))
        rows.append(row)
        decoded_nodes.append(d)

    outputs = _outputs(graph, tok_of, bound)
    if outputs is None or not decoded_nodes:
        return None
    n = len(decoded_nodes)
    node_x = np.frombuffer(b"".join(rows), dtype=np.float64).reshape(n, len(NODE_FEATURES)).copy()
    for j, params in fixes:
        node_x[j, _PARAMS] = params
    edge_x = np.frombuffer(b"".join(edge_rows), dtype=np.float64).reshape(len(src), len(EDGE_FEATURES)).copy()
    built = graph_from_rows(node_x, [d.op_type for d in decoded_nodes], [d.name for d in decoded_nodes],
                           np.array([src, dst], dtype=np.int64).reshape(2, len(src)), edge_x, inputs, outputs,
                           batch_size, training, started, budget, [d.domain for d in decoded_nodes])
    built.fast_lane = True
    built.folded_at_load, built.folded_bytes = folded, folded_bytes
    return built


_PARAMS = NODE_FEATURES.index("params")


def _edge_row(token: Token) -> bytes:
    row = token.edge_row
    if row is None:
        row = token.edge_row = np.array(edge_features(token.info), dtype=np.float64).tobytes()
    return row


def _bind_initializers(graph: onnx.GraphProto, memo: OperatorMemo, limits: Limits, tok_of: dict[str, Token]) -> bool:
    """Every weight's token into ``tok_of`` (stripped weights are headers of a few dozen bytes, decoded once
    by their bytes); False where one is over a limit."""
    decoded = memo.decoded
    for tensor in graph.initializer:
        if tensor.HasField("raw_data"):  # read in place: serialising a weight to look it up would copy it
            name, token = tensor.name, _initializer_token(tensor, memo, limits)
        else:
            data = tensor.SerializeToString()
            found = decoded.get(data)
            if found is None:
                found = (tensor.name, _initializer_token(tensor, memo, limits))
                memo.decode(data, found)
            name, token = found
        if token is None:
            return False
        tok_of[name] = token
    return True


def _external(tensor: onnx.TensorProto) -> bool:
    """Refers to data outside the model (the loader refuses it: ``seernet.loader.check_no_external_data``)."""
    return tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data) > 0


def _initializer_token(tensor: onnx.TensorProto, memo: OperatorMemo, limits: Limits) -> Token | None:
    """A weight's token; integer weights small enough to fold carry their values, as in ``seernet.shapes``."""
    if _external(tensor):
        return None
    return memo.token(tuple(tensor.dims), tensor.data_type, True, initializer_value(tensor, limits.max_fold_elements),
                      limits)


def _constant_token(node: onnx.NodeProto, d: Decoded, memo: OperatorMemo, limits: Limits) -> Token | None:
    """A ``Constant``'s output (remembered on its decoded operator): a weight, as the whole-model path counts
    it, with its value when small."""
    if node.domain not in _STANDARD or len(node.attribute) != 1 or len(node.output) != 1 or len(node.input):
        return None
    d.constant = _constant_value_token(node, memo, limits)
    return d.constant


def _constant_value_token(node: onnx.NodeProto, memo: OperatorMemo, limits: Limits) -> Token | None:
    value = constant_value(node, limits.max_fold_elements)  # the value the whole-model path folds with
    attr = node.attribute[0]
    if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
        if _external(attr.t):
            return None
        return memo.token(tuple(attr.t.dims), attr.t.data_type, True, value, limits)
    if value is None:
        return None
    return memo.token(value.shape, onnx.helper.np_dtype_to_tensor_dtype(value.dtype), True, value, limits)


def _bind_inputs(model: onnx.ModelProto, batch_size: int, dims: dict[str, int], memo: OperatorMemo,
                 limits: Limits, tok_of: dict[str, Token]) -> list[TensorInfo] | None:
    """Data inputs bound as ``seernet.shapes.bind_inputs`` binds them (axis 0 → batch, named dims → ``dims``,
    which gains the batch's symbol as that does); None for anything it would refuse or that needs re-binding."""
    infos = []
    for value in model.graph.input:
        if value.name in tok_of:
            continue  # older exports list weights as inputs too
        if not value.type.HasField("tensor_type"):
            return None
        shape = []
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.HasField("dim_param") and dim.dim_param in dims:
                shape.append(int(dims[dim.dim_param]))
            elif axis == 0:
                if dim.HasField("dim_param"):
                    dims.setdefault(dim.dim_param, batch_size)
                shape.append(batch_size)
            elif dim.HasField("dim_value") and dim.dim_value > 0:
                shape.append(int(dim.dim_value))
            else:
                return None
        token = memo.token(tuple(shape), value.type.tensor_type.elem_type, False, None, limits)
        if token is None:
            return None
        tok_of[value.name] = token
        infos.append(token.info)
    return infos


def _outputs(graph: onnx.GraphProto, tok_of: dict[str, Token], bound: dict[str, int]) -> list[TensorInfo] | None:
    """The graph outputs' shapes; None when one is missing or its declared shape, with the symbols the
    inputs bound (``bound``), disagrees with ours (onnx's strict inference would refuse that, and the
    whole-model path should say so)."""
    infos = []
    for value in graph.output:
        token = tok_of.get(value.name)
        if token is None:
            return None
        if value.type.HasField("tensor_type"):
            declared = value.type.tensor_type
            if declared.elem_type and declared.elem_type != token.info.elem_type:
                return None
            if declared.HasField("shape"):
                if len(declared.shape.dim) != len(token.info.shape):
                    return None
                for dim, size in zip(declared.shape.dim, token.info.shape):
                    if dim.HasField("dim_value") and dim.dim_value != size:
                        return None
                    if dim.HasField("dim_param") and bound.get(dim.dim_param, size) != size:
                        return None
        infos.append(token.info)
    return infos


def _operator_entry(node: onnx.NodeProto, d: Decoded, in_tokens: tuple, opsets: tuple, memo: OperatorMemo,
                    limits: Limits) -> tuple | None:
    """(output tokens, feature row, its parameters, parameter inputs, and for an operator an inference
    computes at load its outputs' tokens as weights, else None) of an operator seen for the first time; None
    where the whole-model path must decide."""
    attrs = memo.attributes_of(node, d.kind[2]) if d.domain in _STANDARD else None
    if attrs is None:
        return None
    names, outs = d.inputs, d.outputs
    out_tokens = _folded(node, names, in_tokens, opsets, memo, limits)
    if out_tokens is None:
        out_tokens = _ruled(node.op_type, in_tokens, outs, attrs, memo, limits)
    if out_tokens is None:
        out_tokens = _inferred(node, names, in_tokens, outs, opsets, memo, limits)
        if out_tokens is None:
            return None
    shapes = {name: token.info for name, token in zip(names, in_tokens) if name}
    shapes.update((name, token.info) for name, token in zip(outs, out_tokens) if name)
    weights = {name for name, token in zip(names, in_tokens) if name and token.weight}
    operator = Op(d.op_type, list(names), list(outs), d.name, attrs, d.domain, attrs_key=())  # attributes decoded once
    try:
        cost = node_cost(operator, shapes, weights, set())
    except Exception:  # a cost the whole-model path would refuse (or compute) its own way
        return None
    row = node_row(cost, operator)
    at_load = None
    if folds(d.op_type, d.domain, names, weights.__contains__):
        at_load = tuple(memo.token(t.info.shape, t.info.elem_type, True, t.value) for t in out_tokens)
        if any(t is None for t in at_load):
            return None
    return tuple(out_tokens), np.array(row, dtype=np.float64).tobytes(), row[_PARAMS], \
        param_inputs(operator, shapes, weights), at_load


def _folded(node: onnx.NodeProto, names: Sequence[str], in_tokens: tuple, opsets: tuple, memo: OperatorMemo,
            limits: Limits) -> list[Token | None] | None:
    """The output token of shape arithmetic evaluated on known values, as the whole-model path folds it
    (``seernet.shapes.fold_value``); None when the operator is not that."""
    if len(node.output) != 1 or not in_tokens:
        return None
    if node.op_type == "Shape":
        value = None if in_tokens[0] is None else shape_value(node, in_tokens[0].info.shape)
    elif all(t is None or t.value is not None for t in in_tokens):
        feeds = {name: token.value for name, token in zip(names, in_tokens) if name}
        value = fold_value(node, feeds, _opsets_model(opsets), limits.max_fold_elements)
    else:
        return None
    if value is None or value.size > limits.max_fold_elements or value.dtype.kind not in "iubf":
        return None
    try:
        elem_type = onnx.helper.np_dtype_to_tensor_dtype(value.dtype)
    except (KeyError, TypeError, ValueError):
        return None
    token = memo.token(tuple(int(d) for d in value.shape), elem_type, False, value, limits)
    return None if token is None else [token]


def _ruled(op_type: str, in_tokens: tuple, outs: Sequence[str], attrs: dict, memo: OperatorMemo,
           limits: Limits) -> list[Token | None] | None:
    """Output tokens from ``seernet.shape_rules`` (a few µs), where a rule covers the operator; else None."""
    if "" in outs:
        return None
    typed = [None if t is None else (t.info.shape, t.info.elem_type) for t in in_tokens]
    shapes = output_shapes(op_type, typed, attrs, len(outs))
    if shapes is None:
        return None
    tokens = [memo.token(shape, elem_type, False, None, limits) for shape, elem_type in shapes]
    return None if any(t is None for t in tokens) else tokens


@lru_cache(maxsize=64)
def _opsets_model(opsets: tuple) -> onnx.ModelProto:
    """An empty model carrying the opsets a one-operator model is built with."""
    return onnx.helper.make_model(onnx.GraphProto(), opset_imports=[onnx.helper.make_opsetid(d, v) for d, v in opsets])


def _inferred(node: onnx.NodeProto, names: list[str], in_tokens: tuple, outs: list[str], opsets: tuple,
              memo: OperatorMemo, limits: Limits) -> list[Token | None] | None:
    """Output tokens from onnx's inference of this one operator; inputs with values are given as constants,
    so operators whose output shape is data (Reshape, Expand, Slice, ConstantOfShape …) resolve."""
    graph = onnx.GraphProto(name="operator")
    graph.node.append(node)
    done = set()
    for name, token in zip(names, in_tokens):
        if not name or name in done:
            continue
        done.add(name)
        if token.value is not None:
            tensor = numpy_helper.from_array(token.value, name)
            tensor.data_type = token.info.elem_type
            graph.initializer.append(tensor)
        else:
            graph.input.append(onnx.helper.make_tensor_value_info(name, token.info.elem_type, token.info.shape))
    for name in outs:
        if name:
            graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    model = onnx.ModelProto()
    model.CopyFrom(_opsets_model(opsets))
    model.graph.CopyFrom(graph)
    try:
        inferred = shape_inference.infer_shapes(model, strict_mode=True)  # values come as constants: no data_prop
    except Exception:
        return None
    found = {v.name: v for v in inferred.graph.output}
    out_tokens: list[Token | None] = []
    for name in outs:
        if not name:
            out_tokens.append(None)
            continue
        value = found.get(name)
        if value is None or not value.type.HasField("tensor_type") or not value.type.tensor_type.HasField("shape"):
            return None
        shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim)
        token = memo.token(shape, value.type.tensor_type.elem_type, False, None, limits)
        if token is None:
            return None
        out_tokens.append(token)
    return out_tokens


"""Shape inference with the batch bound, run on a weight-free copy of the model.

Inference never needs float weight *values*, only their dims, so we hand onnx a
copy whose large float initializers are headers only: this keeps a 100 MB
ResNet-50 from being re-serialised on every request.
"""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

from .budget import CpuBudget
from .errors import GraphBuildError, LimitExceededError, UnknownDimensionError, clip
from .settings import DEFAULT_LIMITS, Limits
from .strip import is_strippable


class TensorInfo:
    """A tensor's shape and element type, with its size computed once (graph building reads it often)."""

    __slots__ = ("shape", "elem_type", "numel", "nbytes", "known")

    def __init__(self, shape: tuple[int, ...], elem_type: int) -> None:
        self.shape = shape
        self.elem_type = elem_type
        self.known = all(d >= 0 for d in shape)
        numel = 1
        for d in shape:
            numel *= d
        self.numel = numel if self.known else -1
        self.nbytes = numel * itemsize(elem_type) if self.known else -1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TensorInfo) and (self.shape, self.elem_type) == (other.shape, other.elem_type)

    def __repr__(self) -> str:
        return f"TensorInfo(shape={self.shape}, elem_type={self.elem_type})"


_ITEMSIZE: dict[int, int] = {}


def itemsize(elem_type: int) -> int:
    if elem_type not in _ITEMSIZE:
        try:
            _ITEMSIZE[elem_type] = onnx.helper.tensor_dtype_to_np_dtype(elem_type).itemsize
        except (KeyError, TypeError, ValueError):
            _ITEMSIZE[elem_type] = 4
    return _ITEMSIZE[elem_type]


def _light_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    light = onnx.ModelProto()
    light.ir_version = model.ir_version
    light.opset_import.extend(model.opset_import)
    graph = light.graph
    graph.name = model.graph.name
    graph.node.extend(model.graph.node)
    graph.input.extend(model.graph.input)
    graph.output.extend(model.graph.output)
    graph.value_info.extend(model.graph.value_info)
    for tensor in model.graph.initializer:
        if is_strippable(tensor):
            header = graph.initializer.add()
            header.name, header.data_type = tensor.name, tensor.data_type
            header.dims.extend(tensor.dims)
        else:
            graph.initializer.append(tensor)
    light.functions.extend(model.functions)
    return light


def data_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The graph inputs a caller feeds: tensors that are not initializers (older exports list weights as inputs)."""
    initializers = {t.name for t in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in initializers and v.type.HasField("tensor_type")]


def static_batch(model: onnx.ModelProto) -> int | None:
    """The batch a model was exported with, when every graph input's axis 0 is the same fixed size; else None.

    ``torch.onnx.export`` without ``dynamic_axes`` writes the example's batch into the file: such a model is
    predicted at that batch unless another is asked for."""
    sizes = set()
    for value in data_inputs(model):
        dims = value.type.tensor_type.shape.dim
        if not dims or not dims[0].HasField("dim_value") or dims[0].dim_value <= 0:
            return None
        sizes.add(int(dims[0].dim_value))
    return sizes.pop() if len(sizes) == 1 else None


def _unfix_batch(model: onnx.ModelProto, batch: int) -> None:
    """Before re-binding a fixed-batch model: declared shapes that carry the old batch on axis 0 are dropped
    (value_info) or made symbolic (outputs), so inference recomputes them from the new batch."""
    del model.graph.value_info[:]
    for value in model.graph.output:
        dims = value.type.tensor_type.shape.dim if value.type.HasField("tensor_type") else []
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value == batch:
            dims[0].dim_param = "batch"


def bind_inputs(model: onnx.ModelProto, batch_size: int, dims: dict[str, int] | None = None) -> None:
    """Fix dims in place: every graph input's axis 0 → ``batch_size``, named dims → ``dims``.

    Declared shapes of intermediate tensors and outputs (``value_info``) get the
    same bindings, so a custom operator whose output shape is declared with the
    batch symbol still resolves.
    """
    dims = dict(dims or {})
    for value in data_inputs(model):
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.HasField("dim_param") and dim.dim_param in dims:
                dim.dim_value = int(dims[dim.dim_param])
            elif axis == 0:
                if dim.HasField("dim_param"):
                    dims.setdefault(dim.dim_param, batch_size)
                dim.dim_value = batch_size
            elif dim.HasField("dim_value") and dim.dim_value <= 0:
                raise GraphBuildError(f"input {clip(value.name)!r} axis {axis} has size {dim.dim_value}; "
                                      "every dimension must be at least 1")
            elif not dim.HasField("dim_value"):
                name = clip(dim.dim_param or "?")
                raise UnknownDimensionError(
                    f"input {clip(value.name)!r} axis {axis} is symbolic ({name!r}) and was not given a value; "
                    f"pass dims={{'{name}': N}} (CLI: --dim {name}=N)")
    for value in (*model.graph.value_info, *model.graph.output):
        if not value.type.HasField("tensor_type"):
            continue
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param") and dim.dim_param in dims:
                dim.dim_value = int(dims[dim.dim_param])


def symbolic_dims(model: onnx.ModelProto) -> set[str]:
    """Names of the symbolic dimensions of the graph's inputs: the only keys a ``dims`` map may have."""
    return {d.dim_param for v in data_inputs(model) for d in v.type.tensor_type.shape.dim if d.HasField("dim_param")}


def check_dims(model: onnx.ModelProto, dims: dict[str, int] | None, limits: Limits) -> None:
    """A request's ``dims``: few keys, each a symbolic dim of this model, each value in 1..max_dim.

    A dim that names an input's batch axis is held to ``max_batch_size`` too,
    so ``dims`` cannot be a way around the batch limit.
    """
    if not dims:
        return
    if len(dims) > limits.max_dims_keys:
        raise LimitExceededError(f"dims has {len(dims)} entries, over the limit of {limits.max_dims_keys}")
    known = symbolic_dims(model)
    unknown = sorted(k for k in dims if k not in known)
    if unknown:
        names = ", ".join(repr(clip(k)) for k in unknown[:3])
        raise GraphBuildError(f"dims names {names}, which {'is' if len(unknown) == 1 else 'are'} not a symbolic "
                              f"dimension of this model's inputs (it has: {sorted(known)[:8]})")
    batch_symbols = {v.type.tensor_type.shape.dim[0].dim_param for v in data_inputs(model)
                     if len(v.type.tensor_type.shape.dim) > 0}
    for name, value in dims.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limits.max_dim:
            raise GraphBuildError(f"dims[{clip(name)!r}] must be an integer in 1..{limits.max_dim}, got {value!r}")
        if name in batch_symbols and value > limits.max_batch_size:
            raise GraphBuildError(f"dims[{clip(name)!r}] is the batch axis; it must be in 1..{limits.max_batch_size}"
                                  f", got {value}")


def _infer(model: onnx.ModelProto, max_shape_data: int = DEFAULT_LIMITS.max_fold_elements) -> onnx.ModelProto:
    """onnx's shape inference; every failure it can raise (C++ errors included) becomes a one-line refusal.

    onnx's data propagation materialises the values of the 1-D integer tensors it follows: a 300-byte model
    whose OneHot of depth 10⁹ is reshaped into a Tile's repeats made it allocate 8 GB.  So inference runs
    first without it, and with it only where that left an operator's output shape unknown (propagating data
    can then only repeat what is known: most CNNs end there, in one pass) and no 1-D integer tensor is longer
    than ``max_shape_data`` (our own folding, bounded the same way, follows the rest)."""
    plain = _run_inference(model, data_prop=False)
    if _knows_every_output(plain) or _long_shape_data(plain, max_shape_data):
        return plain
    return _run_inference(model, data_prop=True)


def _knows_every_output(inferred: onnx.ModelProto) -> bool:
    """Whether every operator output of ``inferred`` has a shape with every dimension known."""
    known = {t.name for t in inferred.graph.initializer}
    for value in (*inferred.graph.value_info, *inferred.graph.output):
        tensor = value.type.tensor_type
        if tensor.HasField("shape") and all(d.HasField("dim_value") for d in tensor.shape.dim):
            known.add(value.name)
    return all(not name or name in known for node in inferred.graph.node for name in node.output)


def _long_shape_data(inferred: onnx.ModelProto, limit: int) -> bool:
    """Whether a 1-D integer tensor of known length over ``limit`` is in ``inferred`` (what data propagation
    would copy element by element)."""
    for value in (*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input):
        tensor = value.type.tensor_type
        if (tensor.elem_type in _INT_TYPES and tensor.HasField("shape") and len(tensor.shape.dim) == 1
                and tensor.shape.dim[0].dim_value > limit):
            return True
    return any(t.data_type in _INT_TYPES and len(t.dims) == 1 and t.dims[0] > limit for t in inferred.graph.initializer)


def _run_inference(model: onnx.ModelProto, data_prop: bool) -> onnx.ModelProto:
    try:
        return shape_inference.infer_shapes(model, strict_mode=True, data_prop=data_prop)
    except MemoryError:
        raise LimitExceededError("shape inference ran out of memory: the model's shapes are too large") from None
    except Exception as exc:  # onnx raises InferenceError, ValidationError, and bare C++ errors (vector::reserve)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if type(exc).__name__ not in ("InferenceError", "ValidationError"):
            first_line = f"the model is malformed ({type(exc).__name__}: {clip(first_line, 120)})"
        raise GraphBuildError(f"shape inference failed: {clip(first_line, 300)}") from None


def infer_shapes(model: onnx.ModelProto, batch_size: int, dims: dict[str, int] | None = None,
                 limits: Limits | None = None, budget: CpuBudget | None = None) -> dict[str, TensorInfo]:
    """Shapes of every tensor (inputs, initializers, intermediates, outputs) with the batch bound."""
    limits = limits or DEFAULT_LIMITS
    budget = budget or CpuBudget(limits.max_build_cpu_s)
    check_dims(model, dims, limits)
    light = _light_copy(model)
    fixed = static_batch(model)
    rebinding = fixed is not None and fixed != batch_size
    if rebinding:
        _unfix_batch(light, fixed)
    bind_inputs(light, batch_size, dims)
    try:
        shapes = _collect(_infer(light, limits.max_fold_elements))
    except GraphBuildError as exc:
        if rebinding:
            raise GraphBuildError(_fixed_batch_message(fixed, batch_size, str(exc))) from None
        raise
    if rebinding:
        _check_rebound(light, shapes, fixed, batch_size)
    _check_sizes(shapes, limits)
    for _ in range(MAX_FOLD_ROUNDS):  # each round can unlock shapes the next round folds (CPU-budgeted)
        budget.check("shape inference")
        if _complete(light, shapes):
            break
        folded = _fold_shape_subgraphs(light, shapes, limits, budget)
        if folded is None:
            break
        try:
            refined = _infer(folded, limits.max_fold_elements)
        except GraphBuildError:
            break
        shapes = {**shapes, **{k: v for k, v in _collect(refined).items() if v.known}}
        _check_sizes(shapes, limits)
    return shapes


def _fixed_batch_message(fixed: int, wanted: int, why: str) -> str:
    return (f"the model was exported with a fixed batch of {fixed} and cannot be re-bound to batch {wanted} ({why[:160]}); "
            f"predict it at batch {fixed}, or export it with a dynamic batch: torch.onnx.export(..., "
            "dynamic_axes={'input': {0: 'batch'}, 'output': {0: 'batch'}})")


def _check_rebound(model: onnx.ModelProto, shapes: dict[str, TensorInfo], fixed: int, wanted: int) -> None:
    """A re-bound model must carry the new batch to its outputs; a Reshape with the old batch baked in would
    not, and its costs would silently be those of another model."""
    for value in model.graph.output:
        info = shapes.get(value.name)
        if info is not None and info.known and info.shape and info.shape[0] != wanted:
            raise GraphBuildError(_fixed_batch_message(
                fixed, wanted, f"output {clip(value.name, 40)!r} keeps axis 0 = {info.shape[0]}"))


def _check_sizes(shapes: dict[str, TensorInfo], limits: Limits) -> None:
    """No tensor of absurd rank or size: costs are computed from these, and must stay finite."""
    for name, info in shapes.items():
        if len(info.shape) > limits.max_rank:
            raise LimitExceededError(f"tensor {clip(name)!r} has rank {len(info.shape)}, over the limit of "
                                     f"{limits.max_rank} (max_rank)")
        if info.known and info.numel > limits.max_tensor_elements:
            raise LimitExceededError(f"tensor {clip(name)!r} has {info.numel:.3g} elements, over the limit of "
                                     f"{limits.max_tensor_elements:.3g} (max_tensor_elements)")


def _complete(model: onnx.ModelProto, shapes: dict[str, TensorInfo]) -> bool:
    """Every operator output has a fully known shape (inputs are outputs, graph inputs or initializers)."""
    for node in model.graph.node:
        for name in node.output:
            if name:
                info = shapes.get(name)
                if info is None or not info.known:
                    return False
    return True


_FOLDABLE = {"Shape", "Gather", "Concat", "Unsqueeze", "Squeeze", "Slice", "Cast", "Equal", "Where", "Mul", "Add",
             "Sub", "Div", "ConstantOfShape", "Range", "Reshape", "Expand", "Size", "Not", "Less", "Greater",
             "Min", "Max", "Abs", "Neg", "Identity", "ReduceProd", "Floor", "Ceil", "Sqrt", "Mod", "Clip", "Round",
             "Transpose", "Tile", "ReduceSum", "ReduceMax", "ReduceMin", "And", "Or", "LessOrEqual",
             "GreaterOrEqual", "Flatten", "OneHot"}
_ELEMENTWISE = {"Equal", "Where", "Mul", "Add", "Sub", "Div", "Less", "Greater", "Min", "Max", "Mod", "Not", "Abs",
                "Neg", "Identity", "Floor", "Ceil", "Sqrt", "Cast", "Clip", "Round", "And", "Or", "LessOrEqual",
                "GreaterOrEqual"}
_INT_TYPES = (onnx.TensorProto.INT64, onnx.TensorProto.INT32)
# shape arithmetic often runs in floating point (TF-style "same" padding: ceil(size / stride) in float)
_FOLD_TYPES = (*_INT_TYPES, onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.BOOL)
MAX_FOLD_ROUNDS = 64  # each round folds what the last one's inference unlocked (a windowed block per round)


def _broadcast_numel(*shapes: tuple[int, ...]) -> int | None:
    try:
        return math.prod(np.broadcast_shapes(*shapes))
    except ValueError:
        return None


def _fold_output_numel(node: onnx.NodeProto, feeds: dict[str, np.ndarray]) -> int | None:
    """An upper bound of the elements ``node`` would produce from ``feeds``, computed without evaluating it.

    None when it cannot be bounded, and then the node is not evaluated: a
    ``ConstantOfShape`` of [16000, 16000] must be refused from its 2 input
    numbers, not after allocating a gigabyte.
    """
    args = [feeds[name] if name else None for name in node.input]
    first = args[0] if args else None
    op = node.op_type
    try:
        if op == "ConstantOfShape":
            return math.prod(int(d) for d in first.reshape(-1)) if first is not None and (first >= 0).all() else None
        if op == "Expand":
            return _broadcast_numel(first.shape, tuple(int(d) for d in args[1].reshape(-1)))
        if op == "Range":
            start, limit, delta = (float(a.reshape(-1)[0]) for a in args[:3])
            return max(0, math.ceil((limit - start) / delta)) if delta else None
        if op == "Concat":
            return sum(a.size for a in args if a is not None)
        if op == "Gather":
            axis = int(_attribute(node, "axis", 0))
            return first.size // max(1, first.shape[axis]) * args[1].size if first.ndim else None
        if op in ("Reshape", "Slice", "Squeeze", "Unsqueeze", "ReduceProd", "Size", "Transpose", "Flatten", "ReduceSum",
                  "ReduceMax", "ReduceMin"):
            return first.size if first is not None else None
        if op == "Tile":
            return first.size * math.prod(max(0, int(r)) for r in args[1].reshape(-1))
        if op == "OneHot":  # torch's ``repeat`` on a computed count exports one (GC ViT's attention)
            depth = int(args[1].reshape(-1)[0])
            return first.size * depth if depth >= 0 else None
        if op in _ELEMENTWISE:
            return _broadcast_numel(*(a.shape for a in args if a is not None))
    except (AttributeError, IndexError, TypeError, ValueError, OverflowError, ZeroDivisionError):
        return None
    return None


def constant_value(node: onnx.NodeProto, limit: int) -> np.ndarray | None:
    """A small ``Constant``'s value (integer, boolean or float) read straight from its attribute."""
    for attr in node.attribute:
        if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
            if attr.t.data_type in _FOLD_TYPES and math.prod(attr.t.dims) <= limit and _has_data(attr.t):
                return _to_array(attr.t)
        elif attr.name == "value_int":
            return np.array(attr.i, dtype=np.int64)
        elif attr.name == "value_ints" and len(attr.ints) <= limit:
            return np.array(list(attr.ints), dtype=np.int64)
        elif attr.name == "value_float":
            return np.array(attr.f, dtype=np.float32)
    return None


def _attribute(node: onnx.NodeProto, name: str, default: object = None) -> object:
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


def _unsqueeze(node: onnx.NodeProto, args: list[np.ndarray]) -> np.ndarray:
    axes = args[1].reshape(-1).tolist() if len(args) > 1 else list(_attribute(node, "axes", []))  # opset 13: input
    return np.expand_dims(args[0], tuple(int(a) for a in axes))


# The operators shape arithmetic is made of, evaluated with numpy: onnx's ReferenceEvaluator builds a model per
# call (~0.25 ms), and a ViT's build folds ~130 of them (Unsqueeze, Gather, Concat: 124 of ViT-Ti's 130).
# Same semantics as the reference (negative axes and indices count from the end); tests compare the two.
_FAST_FOLDS = {
    "Unsqueeze": _unsqueeze,
    "Gather": lambda node, args: np.take(args[0], args[1], axis=int(_attribute(node, "axis", 0))),
    "Concat": lambda node, args: np.concatenate(args, axis=int(_attribute(node, "axis", 0))),
}


def initializer_value(tensor: onnx.TensorProto, limit: int) -> np.ndarray | None:
    """An integer weight's value when shape arithmetic may read it (at most ``limit`` elements, its data
    present and well-formed); None otherwise."""
    if tensor.data_type in _INT_TYPES and math.prod(tensor.dims) <= limit and _has_data(tensor):
        return _to_array(tensor)
    return None


def _to_array(tensor: onnx.TensorProto) -> np.ndarray | None:
    """A tensor's values; None when its data does not fit its dims (a malformed request is refused by onnx's
    inference later, in one line, never by a crash here)."""
    try:
        return numpy_helper.to_array(tensor)
    except (ValueError, TypeError, KeyError):
        return None


def shape_value(node: onnx.NodeProto, shape: tuple[int, ...]) -> np.ndarray:
    """What a ``Shape`` operator returns for an input of ``shape`` (its ``start``/``end`` applied)."""
    full = np.array(shape, dtype=np.int64)
    return full[_attribute(node, "start", 0): _attribute(node, "end", len(full))]


def fold_value(node: onnx.NodeProto, feeds: dict[str, np.ndarray], opsets: onnx.ModelProto,
               limit: int) -> np.ndarray | None:
    """``node`` evaluated on ``feeds`` (its inputs' values) when it is shape arithmetic whose output, bounded
    from its inputs before anything is evaluated, stays within ``limit`` elements; None otherwise, or where
    evaluation fails.  ``opsets``: a model whose opset imports the operator is read with.  The whole-model
    path and the fast lane (``seernet.fast_graph``) fold through this one function."""
    if node.op_type not in _FOLDABLE or not feeds:
        return None
    try:
        bound = _fold_output_numel(node, feeds)
        if bound is None or bound > limit:
            return None
        fast = _FAST_FOLDS.get(node.op_type)
        if fast is not None:
            return np.asarray(fast(node, [feeds[name] for name in node.input if name]))
        from onnx.reference import ReferenceEvaluator

        return np.asarray(ReferenceEvaluator(_single(node, opsets, feeds)).run(None, feeds)[0])
    except Exception:  # anything the reference evaluator rejects just stays unfolded
        return None


def _fold_shape_subgraphs(light: onnx.ModelProto, shapes: dict[str, TensorInfo], limits: Limits,
                          budget: CpuBudget) -> onnx.ModelProto | None:
    """Evaluate the small integer subgraphs that compute shapes, and return a copy of the model
    where their results are constants, so onnx's inference can follow them.

    This is how a torch ``expand(B, -1, -1)`` (Shape → Gather → Equal → Where) becomes a known
    shape.  Nothing is evaluated whose output could exceed ``limits.max_fold_elements``
    (bounded from the inputs first).  Returns None when nothing could be folded.
    """
    limit = limits.max_fold_elements
    values: dict[str, np.ndarray] = {}
    for tensor in light.graph.initializer:
        value = initializer_value(tensor, limit)
        if value is not None:
            values[tensor.name] = value
    folded: set[int] = set()
    for index, node in enumerate(light.graph.node):
        if index % 256 == 0:
            budget.check("shape folding")
        if node.domain not in ("", "ai.onnx") or len(node.output) != 1:
            continue
        if node.op_type == "Constant":
            value = constant_value(node, limit)
        elif node.op_type == "Shape":
            info = shapes.get(node.input[0])
            value = shape_value(node, info.shape) if info is not None and info.known else None
        elif all(not name or name in values for name in node.input):
            value = fold_value(node, {name: values[name] for name in node.input if name}, light, limit)
        else:
            continue
        if value is None or value.size > limit or value.dtype.kind not in "iubf":
            continue
        values[node.output[0]] = value
        folded.add(index)
    if not folded:
        return None
    out = onnx.ModelProto()
    out.CopyFrom(light)
    del out.graph.node[:]
    out.graph.node.extend(n for i, n in enumerate(light.graph.node) if i not in folded)
    _forget_declared_output_shapes(out)
    known = {t.name for t in out.graph.initializer}
    for index in folded:
        name = light.graph.node[index].output[0]
        if name not in known:
            out.graph.initializer.append(numpy_helper.from_array(values[name], name))
    return out


def _forget_declared_output_shapes(model: onnx.ModelProto) -> None:
    """Clear the declared shapes of graph outputs that a standard operator computes.

    The TorchScript exporter names an output's axes by guessing which are equal (Conv2dSame's output was
    declared ``(batch, 8, batch, ?)``), and binding the batch then declares a wrong size that onnx's
    inference refuses once folding lets it compute the right one; standard operators' outputs are
    inferred anyway, custom operators keep what they declare."""
    standard = {name for node in model.graph.node if node.domain in ("", "ai.onnx") for name in node.output}
    for value in model.graph.output:
        if value.name in standard and value.type.HasField("tensor_type"):
            value.type.tensor_type.ClearField("shape")


def _has_data(tensor: onnx.TensorProto) -> bool:
    """Whether an integer tensor carries its values (a weight-stripped copy keeps only headers of floats)."""
    return (bool(tensor.raw_data or tensor.int64_data or tensor.int32_data or tensor.float_data or tensor.double_data)
            or len(tensor.dims) == 0 or 0 in tensor.dims)


def _single(node: onnx.NodeProto, light: onnx.ModelProto, feeds: dict | None = None) -> onnx.ModelProto:
    from onnx import helper

    inputs = [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(arr.dtype), arr.shape)
              for name, arr in (feeds or {}).items()]
    outputs = [helper.make_empty_tensor_value_info(name) for name in node.output]
    graph = helper.make_graph([node], "fold", inputs, outputs)
    return helper.make_model(graph, opset_imports=light.opset_import, ir_version=light.ir_version)


def _collect(inferred: onnx.ModelProto) -> dict[str, TensorInfo]:
    """Every tensor's shape as inference left it.  Tensors of one shape and type share one :class:`TensorInfo`
    (a transformer has ~2,000 tensors of a few dozen shapes; TensorInfo is read-only)."""
    shapes: dict[str, TensorInfo] = {}
    interned: dict[tuple, TensorInfo] = {}

    def info(dims: tuple[int, ...], elem_type: int) -> TensorInfo:
        found = interned.get((dims, elem_type))
        if found is None:
            found = interned[(dims, elem_type)] = TensorInfo(dims, elem_type)
        return found

    for tensor in inferred.graph.initializer:
        shapes[tensor.name] = info(tuple(tensor.dims), tensor.data_type)
    for value in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        if value.name in shapes or not value.type.HasField("tensor_type"):
            continue
        tensor_type = value.type.tensor_type
        if not tensor_type.HasField("shape"):
            continue
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim)
        shapes[value.name] = info(dims, tensor_type.elem_type)
    for node in inferred.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    shapes[node.output[0]] = info(tuple(attr.t.dims), attr.t.data_type)
    return shapes


def require(shapes: dict[str, TensorInfo], tensor: str, node: onnx.NodeProto) -> TensorInfo:
    """The shape of ``tensor``, or :class:`UnknownDimensionError` naming it and its operator."""
    info = shapes.get(tensor)
    if info is None:
        raise UnknownDimensionError(f"shape of tensor {tensor!r} (at {node.op_type} {node.name!r}) is unknown after inference")
    if not info.known:
        raise UnknownDimensionError(
            f"tensor {tensor!r} (at {node.op_type} {node.name!r}) has an unknown dimension after inference: {info.shape}")
    return info

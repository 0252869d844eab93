"""Shape inference with the batch bound, run on a weight-free copy of the model.

Inference never needs float weight *values*, only their dims, so we hand onnx a
copy whose large float initializers are headers only: this keeps a 100 MB
ResNet-50 from being re-serialised on every request.
"""
from __future__ import annotations

import onnx
from onnx import shape_inference

from .errors import GraphBuildError, UnknownDimensionError
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


def bind_inputs(model: onnx.ModelProto, batch_size: int, dims: dict[str, int] | None = None) -> None:
    """Fix dims in place: every graph input's axis 0 → ``batch_size``, named dims → ``dims``.

    Declared shapes of intermediate tensors and outputs (``value_info``) get the
    same bindings, so a custom operator whose output shape is declared with the
    batch symbol still resolves.
    """
    dims = dict(dims or {})
    initializers = {t.name for t in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers or not value.type.HasField("tensor_type"):
            continue
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.HasField("dim_param") and dim.dim_param in dims:
                dim.dim_value = int(dims[dim.dim_param])
            elif axis == 0:
                if dim.HasField("dim_param"):
                    dims.setdefault(dim.dim_param, batch_size)
                dim.dim_value = batch_size
            elif not dim.HasField("dim_value") or dim.dim_value <= 0:
                name = dim.dim_param or "?"
                raise UnknownDimensionError(
                    f"input {value.name!r} axis {axis} is symbolic ({name!r}) and was not given a value; "
                    f"pass dims={{'{name}': N}} (CLI: --dim {name}=N)")
    for value in (*model.graph.value_info, *model.graph.output):
        if not value.type.HasField("tensor_type"):
            continue
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param") and dim.dim_param in dims:
                dim.dim_value = int(dims[dim.dim_param])


def infer_shapes(model: onnx.ModelProto, batch_size: int, dims: dict[str, int] | None = None) -> dict[str, TensorInfo]:
    """Shapes of every tensor (inputs, initializers, intermediates, outputs) with the batch bound."""
    light = _light_copy(model)
    bind_inputs(light, batch_size, dims)
    try:
        inferred = shape_inference.infer_shapes(light, strict_mode=True, data_prop=True)
    except (shape_inference.InferenceError, onnx.checker.ValidationError, RuntimeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GraphBuildError(f"shape inference failed: {first_line}") from None
    shapes = _collect(inferred)
    for _ in range(3):  # each round can unlock shapes the next round folds
        if _complete(light, shapes):
            break
        folded = _fold_shape_subgraphs(light, shapes)
        if folded is None:
            break
        try:
            refined = shape_inference.infer_shapes(folded, strict_mode=True, data_prop=True)
        except (shape_inference.InferenceError, onnx.checker.ValidationError, RuntimeError):
            break
        shapes = {**shapes, **{k: v for k, v in _collect(refined).items() if v.known}}
    return shapes


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
             "Min", "Max", "Abs", "Neg", "Identity", "ReduceProd", "Floor", "Ceil", "Sqrt", "Mod"}
_MAX_FOLD_ELEMENTS = 4096


def _fold_shape_subgraphs(light: onnx.ModelProto, shapes: dict[str, TensorInfo]) -> onnx.ModelProto | None:
    """Evaluate the small integer subgraphs that compute shapes, and return a copy of the model
    where their results are constants, so onnx's inference can follow them.

    This is how a torch ``expand(B, -1, -1)`` (Shape → Gather → Equal → Where) becomes a known
    shape.  Returns None when nothing could be folded.
    """
    import numpy as np
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    values: dict[str, np.ndarray] = {}
    for tensor in light.graph.initializer:
        if tensor.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32) and _has_data(tensor):
            values[tensor.name] = numpy_helper.to_array(tensor)
    folded: set[int] = set()
    for index, node in enumerate(light.graph.node):
        try:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                value = onnx.reference.ReferenceEvaluator(_single(node, light)).run(None, {})[0]
            elif node.op_type == "Shape" and node.input[0] in shapes and all(d >= 0 for d in shapes[node.input[0]].shape):
                attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
                full = np.array(shapes[node.input[0]].shape, dtype=np.int64)
                value = full[attrs.get("start", 0): attrs.get("end", len(full))]
            elif (node.op_type in _FOLDABLE and node.domain in ("", "ai.onnx") and len(node.output) == 1
                  and all(not name or name in values for name in node.input)):
                feeds = {name: values[name] for name in node.input if name}
                value = ReferenceEvaluator(_single(node, light, feeds)).run(None, feeds)[0]
            else:
                continue
        except Exception:  # anything the reference evaluator rejects just stays unfolded
            continue
        value = np.asarray(value)
        if value.size > _MAX_FOLD_ELEMENTS or value.dtype.kind not in "iub":
            continue
        values[node.output[0]] = value
        folded.add(index)
    if not folded:
        return None
    out = onnx.ModelProto()
    out.CopyFrom(light)
    del out.graph.node[:]
    out.graph.node.extend(n for i, n in enumerate(light.graph.node) if i not in folded)
    known = {t.name for t in out.graph.initializer}
    for index in folded:
        name = light.graph.node[index].output[0]
        if name not in known:
            out.graph.initializer.append(numpy_helper.from_array(values[name], name))
    return out


def _has_data(tensor: onnx.TensorProto) -> bool:
    return bool(tensor.raw_data or tensor.int64_data or tensor.int32_data) or len(tensor.dims) == 0 or 0 in tensor.dims


def _single(node: onnx.NodeProto, light: onnx.ModelProto, feeds: dict | None = None) -> onnx.ModelProto:
    from onnx import helper

    inputs = [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(arr.dtype), arr.shape)
              for name, arr in (feeds or {}).items()]
    outputs = [helper.make_empty_tensor_value_info(name) for name in node.output]
    graph = helper.make_graph([node], "fold", inputs, outputs)
    return helper.make_model(graph, opset_imports=light.opset_import, ir_version=light.ir_version)


def _collect(inferred: onnx.ModelProto) -> dict[str, TensorInfo]:
    shapes: dict[str, TensorInfo] = {}
    for tensor in inferred.graph.initializer:
        shapes[tensor.name] = TensorInfo(tuple(int(d) for d in tensor.dims), tensor.data_type)
    for value in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        if value.name in shapes or not value.type.HasField("tensor_type"):
            continue
        tensor_type = value.type.tensor_type
        if not tensor_type.HasField("shape"):
            continue
        dims_ = []
        for dim in tensor_type.shape.dim:
            dims_.append(int(dim.dim_value) if dim.HasField("dim_value") else -1)
        shapes[value.name] = TensorInfo(tuple(dims_), tensor_type.elem_type)
    for node in inferred.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    shapes[node.output[0]] = TensorInfo(tuple(int(d) for d in attr.t.dims), attr.t.data_type)
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

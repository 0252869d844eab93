"""Operators a runtime computes once, when it loads the model, and never again at inference.

onnxruntime's constant folding (on at every optimisation level but none) evaluates at session creation each
operator whose inputs are all weights, then every operator fed only by those: the Transpose of a weight an
export with ``do_constant_folding=False`` leaves, NF-Net's and BiT's weight standardisation, Swin-V2's
relative-position MLP, LeViT's attention-bias lookups, the Identity copies an exporter puts on shared weights.
An inference never runs them, so an inference graph leaves them out and reads their outputs as weights (what
onnxruntime's optimised model holds); a training step recomputes them (torch does, every step), so a training
graph keeps them.  Why it matters: timm's NF-ResNet-26 exported this way has 517 of its 887 operators on
weights alone, and ResNet-18 exported without folding was predicted 11 % slower than the same model folded,
while onnxruntime runs both in the same time.

Parameters stay where they were: a folded operator's float weights count once, at the first operator that
reads its output (``sources``), so a model's parameter count does not depend on how it was exported.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

# Never folded: draws a new value each run, holds sub-graphs, or is kept as a quantisation boundary
NOT_FOLDED = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
                        "Bernoulli", "If", "Loop", "Scan", "QuantizeLinear", "DequantizeLinear",
                        "DynamicQuantizeLinear"})
_STANDARD = ("", "ai.onnx")

Sources = tuple[tuple[str, int], ...]  # (initializer name, elements) of the parameters a folded tensor holds


def folds(op_type: str, domain: str, inputs: Sequence[str], is_weight: Callable[[str], bool]) -> bool:
    """Whether a runtime computes this operator once at load: a standard, deterministic operator that reads
    at least one tensor and only weights (initializers, constants, outputs of operators that fold)."""
    return (domain in _STANDARD and op_type not in NOT_FOLDED and any(inputs)
            and all(is_weight(name) for name in inputs if name))


def folded_sources(op_type: str, inputs: Sequence[str], sources_of: Callable[[str], Sources]) -> Sources:
    """The parameters a folded operator's output carries: those of its inputs, each once, without
    BatchNormalization's running statistics (which are not parameters: ``seernet.costs.param_inputs``)."""
    skip = {3, 4} if op_type == "BatchNormalization" else set()
    seen: dict[str, int] = {}
    for index, name in enumerate(inputs):
        if name and index not in skip:
            for source, numel in sources_of(name):
                seen.setdefault(source, numel)
    return tuple(seen.items())


def new_parameters(name: str, numel: int, sources: dict[str, Sources] | None, counted: set[str]) -> float:
    """The parameters an operator's input ``name`` (a parameter of ``numel`` elements) adds to the model's
    count, marking them counted: a weight's elements the first time it is read; for a tensor computed at load
    (in ``sources``), those of the parameters it was computed from that no operator counted yet."""
    carried = sources.get(name) if sources else None
    total = 0.0
    for source, elements in carried if carried is not None else ((name, numel),):
        if source not in counted:
            counted.add(source)
            total += elements
    return total


def sources_lookup(sources: dict[str, Sources], param_numel: Callable[[str], int]) -> Callable[[str], Sources]:
    """What a tensor carries: a folded tensor its recorded parameters, a weight itself if it is a parameter
    (``param_numel``: its elements, else 0), anything else nothing."""

    def sources_of(name: str) -> Sources:
        found = sources.get(name)
        if found is not None:
            return found
        numel = param_numel(name)
        return ((name, numel),) if numel else ()

    return sources_of


def bytes_written_at_load(op_type: str, output_nbytes: Iterable[int]) -> float:
    """What a folded operator's outputs hold (unknown sizes, -1, left out): onnxruntime keeps every tensor it
    computes at load until its optimiser drops the unused ones, so a model that standardises its weights needs
    several copies of them while it loads (timm's NF-SE-ResNet-50: 608 MB of peak memory for 112 MB of weights).
    An Identity hands its input on instead of copying it: ALBERT's twelve Identities of one layer's weights
    cost it nothing (110 MB measured)."""
    return 0.0 if op_type == "Identity" else float(sum(max(n, 0) for n in output_nbytes))


def fold_at_load(nodes: Sequence, weights: set[str], param_numel: Callable[[str], int]
                 ) -> tuple[list, set[str], dict[str, Sources], list]:
    """(the operators an inference runs, the weights it reads, each folded tensor's parameters, the operators
    computed at load) for ``nodes`` in topological order.  ``param_numel``: a weight's elements if it is a
    parameter, else 0.  A graph whose every operator folds is left as it is: it computes nothing from its
    inputs, and the builder says so."""
    folded_weights = set(weights)
    sources: dict[str, Sources] = {}
    sources_of = sources_lookup(sources, param_numel)
    kept, folded = [], []
    for node in nodes:
        if folds(node.op_type, node.domain, node.input, folded_weights.__contains__):
            carried = folded_sources(node.op_type, node.input, sources_of)
            for out in node.output:
                if out:
                    folded_weights.add(out)
                    sources[out] = carried
            folded.append(node)
        else:
            kept.append(node)
    if not kept:
        return list(nodes), weights, {}, []
    return kept, folded_weights, sources, folded

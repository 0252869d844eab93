"""Per-operator cost model: each operator's time from its own shape and its neighbours, summed into a model's.

Why: a whole-model network learns the spaces it was trained on; an operator model learns what a Conv of a
given shape costs on this CPU, which is the same in a timm network, a torchvision one or ours.  Every profiled
measurement gives tens to hundreds of operator labels (``seernet.operator_labels``) instead of one.

* **Labels.** A profiled kernel's time is split over the graph nodes it ran: first in proportion to their
  roofline time (:func:`roofline_ms`), then, for :data:`LABEL_SPLIT_ROUNDS` refits, in proportion to the
  previous fit's predicted node times.  A fused kernel's time is one measurement of a sum; the roofline's
  split is a guess that gave a Relu or Add fused into a convolution (NAS-Bench-201 cells) up to half of
  the kernel, and trees then taught other families that such operators cost that much.  Re-splitting by
  what the trees learned everywhere else approaches fitting each kernel's sum (README, "Fused kernels").
* **Target.** ``log(time / roofline time)``: the trees learn an *efficiency*, which stays bounded for
  operators larger than any seen in training.  Trees on log time cannot predict above their largest leaf:
  that way VGG-11 at batch 8 (60 GFLOPs, the dataset's cap is 12) was predicted at 0.17× its measured time.
* **Features** (:data:`OPERATOR_FEATURES`): the op type, the first producer's and the sole consumer's op type
  (they decide whether a runtime fuses it), log1p of every ``NODE_FEATURES`` column but the layout-dependent
  ones (:data:`LAYOUT_DEPENDENT`), in/out degree, log batch, how much a vector unit pads the channels
  (:func:`channel_padding`), and whether the row was measured on this device (other devices' rows may join a
  fit, :data:`AUXILIARY_WEIGHT`).
* **Whole model.** ``(a + e·log batch)·Σ node times + b·MB moved + c·nodes + d`` (least squares on relative
  error; all but ``e`` non-negative): what runs between kernels (allocation, layout reorders, the executor)
  grows with memory traffic and node count, and the profiled kernels cover 77–92 % of a model's measured
  time.  ``e``: the kernels' sum over-states how time grows with the batch (on the Intel Xeon's 164 real
  architectures, b8/b1 was predicted 8.49× against 8.06× measured, median); learned from the training rows.
* **Fusion.** How often each (op, producer op) pair ran in its producer's kernel is counted from the same
  profiles, so a breakdown can say which nodes a kernel fuses (:meth:`OperatorModel.fused_with_producer`).

Weights are plain arrays (``seernet.trees``: safetensors + JSON), never a pickle.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .data import Sample
from .graph import EDGE_FEATURES, NODE_FEATURES, PerfGraph
from .op_vocab import OP_VOCAB
from .trees import export_trees, load_arrays, merge_trees, predict_trees, save_arrays

# Node columns whose meaning depends on the tensor layout: "spatial" is H·W of an NCHW image but T·d of a
# (batch, heads, tokens, d) attention tensor.  On NesT, whose attention MatMuls read rank-4 (batch, blocks,
# tokens, channels) tensors, the trees met spatial sizes 380× any MatMul they were trained on and predicted
# the model at 2.9× its time.  Without them (sizes still come from FLOPs, bytes and channels), 162 real
# architectures: 11.7 → 10.0 % MAPE on the Intel Xeon, 11.8 → 11.6 % on the AMD EPYC (README, issue 12).
LAYOUT_DEPENDENT = ("in_spatial", "out_spatial")
_NODE_COLUMNS = [i for i, name in enumerate(NODE_FEATURES) if name not in LAYOUT_DEPENDENT]
# Channels per group rounded up to a block of 8 or 16 floats (AVX2 / AVX-512 registers; onnxruntime's NCHWc
# convolutions block channels so), as a ratio to the real count: the work a vector unit wastes on padding.
# Trees on log channels cannot see divisibility, and it matters: timm's rexnet_100 (channels 27, 38, 61 …)
# was predicted at 0.63-0.80x its measured convolution time *in training*, its rounded twin rexnetr_100 at
# 1.0-1.2x (Intel Xeon dataset, 2026-12-06).
CHANNEL_BLOCKS = (8, 16)
OPERATOR_FEATURES: tuple[str, ...] = (
    "op", "producer_op", "consumer_op", *(f"log1p_{NODE_FEATURES[i]}" for i in _NODE_COLUMNS), "producers",
    "consumers", "log_batch", *(f"{side}_channel_padding_{block}" for side in ("in", "out") for block in CHANNEL_BLOCKS),
    "this_device")
# Rows measured on other devices can teach what an operator's shape does to its cost (which runs alone, which
# fuses, what padding costs) where this device's own rows are few: they enter the fit with ``this_device`` = 0
# and :data:`AUXILIARY_WEIGHT` per model, this device's with 1, and predictions always read 1, so the trees
# split on the column where the devices differ and share the rest.  The last column: a model saved before it
# never reads it and loads unchanged.
AUXILIARY_WEIGHT = 0.5
NO_NEIGHBOUR, SEVERAL_CONSUMERS = len(OP_VOCAB), len(OP_VOCAB) + 1  # codes beyond the op vocabulary
COMPOSITION_TERMS = ("sum of operator times", "MB moved", "nodes", "constant", "sum of operator times × log batch")
MIN_OPERATOR_SCALE = 0.25  # the operators' scale at any batch stays at least this share of ``a``

_FLOPS = NODE_FEATURES.index("flops")
_GROUPS, _IN_CHANNELS, _OUT_CHANNELS = (NODE_FEATURES.index(n) for n in ("groups", "in_channels", "out_channels"))
_BYTES = [NODE_FEATURES.index(n) for n in ("bytes_read_act", "bytes_read_weight", "bytes_written")]
# The roofline the efficiency is measured against.  Any fixed values serve (the trees learn the ratio); these
# are near a 2-core VM's single-thread figures, so the efficiencies stay near 1.  Measured on the AMD EPYC
# dataset: 50/2, 100/20 and 20/5 GFLOP/s / GB/s give zoo MAPE within 1 point of each other.
ROOFLINE = {"flops_per_ms": 50e6, "bytes_per_ms": 2e6, "overhead_ms": 1e-3, "bounded_reads": True,
            "weight_aliases": True}
# What an operator reads is not always its inputs' size: a Gather reads the rows it gathers, not its table (an
# embedding of 32,000 × 512 floats is 65 MB; one lookup of 32 tokens reads 64 KB), a Slice the slice, a Shape
# only metadata.  Counted as whole tensors, their roofline was up to 1,000× their time, and trees fitted where
# tables were small over-predicted large ones: leaving the Hugging Face family out of the Intel Xeon's rows,
# DistilBERT and RoBERTa rows were predicted at 1.5-3× their time, their Gathers at 0.13-0.70 ms against
# 0.00-0.02 measured.  With ``bounded_reads`` (in :data:`ROOFLINE`, so saved with each model; a model saved
# before reads the whole tensors, as it was fitted) these reads are bounded by what the operator writes.
# ``weight_aliases``: an Identity of a weight is the weight.  The exporter gives each use of a shared weight
# (ALBERT's one layer run twelve times) an Identity of the initializer; the runtime removes it, and its
# consumers multiply by a weight.  Counted as written, it was a copy of up to 9 MB and its MatMuls read two
# activations, and ALBERT-base at batch 8 was predicted at 0.77× its time (BERT-base 1.04×).


def _op_mask(ops: Sequence[str]) -> np.ndarray:
    """A lookup indexed by op id: True for ``ops`` (one gather per graph, where ``np.isin`` sorts)."""
    mask = np.zeros(len(OP_VOCAB), dtype=bool)
    mask[[OP_VOCAB.index(op) for op in ops]] = True
    return mask


SUBSET_READERS = _op_mask(("Gather", "GatherElements", "GatherND", "Slice", "Compress"))
METADATA_READERS = _op_mask(("Shape", "Size"))
_IDENTITY = OP_VOCAB.index("Identity")

# Trees: shallow, many, strongly regularised.  On the AMD EPYC dataset (468 profiled models) against 164 real
# architectures measured on the same machine (session experiments, 2026-12-06): 63 leaves / 10 rows per leaf
# gave MAPE 13.4 %, 15 leaves / 100 per leaf / l2 1.0 gave 11.6 % (that fit with the spatial columns: 11.9 %;
# the refit without them 11.6 %, Kendall 0.946; with the channel-padding columns 11.9 %, 0.947,
# bench/results/zoo_operator_trees.json).  A trade-off: the less regularised setting left families out better
# (mean leave-one-family-out MAPE 22.2 % against 27.1 %, bench/results/evaluation_operator_trees).
TREE_PARAMS = {"max_iter": 800, "learning_rate": 0.03, "max_leaf_nodes": 15, "l2_regularization": 1.0}
MIN_SAMPLES_LEAF = (5, 100)  # operators per leaf: a 200th of the training operators, within these bounds
MIN_PROFILED_MODELS = 5  # fewer profiled models cannot teach operator costs; fit says so
FUSED_SHARE = 0.5  # an (op, producer op) pair that shared its producer's kernel at least this often is fused
# Refits that split fused kernels' times by the previous fit's node times (0: by roofline time alone).  Chosen
# on criteria that never read the real-architecture check: leave-one-family-out on the Intel Xeon's rows and
# the fit's validation rows (README, "Fused kernels").
LABEL_SPLIT_ROUNDS = 3
# The rounds before the last only decide how kernels split: a quarter of the trees at four times the rate
# (leaving a family out of the Xeon's rows, mean 13.64 % against 13.55 % with full rounds, in 1.75× the time
# of one fit instead of 4×; six such rounds 13.62 %).
SPLIT_ROUND_PARAMS = {**TREE_PARAMS, "max_iter": 200, "learning_rate": 0.12}


def first_producer(graph: PerfGraph) -> np.ndarray:
    """Per node, the node writing its first input edge (edge order), -1 for none: the producer a runtime fuses
    an operator into, and the one whose op type the trees see."""
    producer = np.full(graph.num_nodes, -1, dtype=np.int64)
    if graph.num_edges:
        src, dst = graph.edge_index
        nodes, first = np.unique(dst, return_index=True)
        producer[nodes] = src[first]
    return producer


def neighbour_ops(graph: PerfGraph) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per node: the first producer's op (:data:`NO_NEIGHBOUR` for none), the sole consumer's op
    (:data:`SEVERAL_CONSUMERS` when it has several), and the in- and out-degree."""
    n = graph.num_nodes
    src, dst = graph.edge_index
    producers = np.bincount(dst, minlength=n).astype(np.float64)
    consumers = np.bincount(src, minlength=n).astype(np.float64)
    producer = first_producer(graph)
    producer_op = np.where(producer >= 0, graph.node_op[np.maximum(producer, 0)], NO_NEIGHBOUR)
    consumer_op = np.full(n, NO_NEIGHBOUR, dtype=np.int64)
    if graph.num_edges:
        nodes, first = np.unique(src, return_index=True)
        consumer_op[nodes] = graph.node_op[dst[first]]
    consumer_op[consumers > 1] = SEVERAL_CONSUMERS
    return producer_op, consumer_op, producers, consumers


def enough_profiles(samples: Sequence[Sample]) -> bool:
    """Whether ``samples`` carry per-operator profiles of enough models to fit operator trees."""
    return sum(s.operators is not None for s in samples) >= MIN_PROFILED_MODELS


def channel_padding(graph: PerfGraph) -> np.ndarray:
    """``[nodes, 4]``: per group, input then output channels rounded up to each of :data:`CHANNEL_BLOCKS`, over
    the channels themselves (1.0: no padding; operators without channels read 1.0 too)."""
    x = graph.node_x
    groups = np.maximum(x[:, _GROUPS], 1.0)
    columns = []
    for channels in (x[:, _IN_CHANNELS], x[:, _OUT_CHANNELS]):
        per_group = np.maximum(channels / groups, 1.0)
        columns.extend(np.ceil(per_group / block) * block / per_group for block in CHANNEL_BLOCKS)
    return np.column_stack(columns)


def operator_table(graph: PerfGraph, this_device: bool = True, roofline: dict | None = None,
                   traffic: np.ndarray | None = None) -> np.ndarray:
    """``[nodes, len(OPERATOR_FEATURES)]``: what the trees see of each operator (``this_device`` False: measured
    on another device, an auxiliary row of a fit), its byte columns as :func:`node_bytes` counts them under the
    model's ``roofline`` (default :data:`ROOFLINE`; ``traffic``: those bytes, when the caller has them)."""
    producer_op, consumer_op, producers, consumers = neighbour_ops(graph)
    x = graph.node_x.copy()
    x[:, _BYTES] = node_bytes(graph, roofline) if traffic is None else traffic
    return np.column_stack([graph.node_op, producer_op, consumer_op, np.log1p(np.abs(x[:, _NODE_COLUMNS])),
                            producers, consumers, np.full(graph.num_nodes, np.log(max(graph.batch_size, 1))),
                            channel_padding(graph), np.full(graph.num_nodes, float(this_device))])


def weight_alias_nodes(graph: PerfGraph) -> np.ndarray:
    """Per node, whether it is an Identity of a weight (the exporter's form of a shared weight, which the runtime
    removes): what flows out of it is that weight, not an activation."""
    return (graph.node_op == _IDENTITY) & (graph.node_x[:, _BYTES[1]] > 0)


def node_bytes(graph: PerfGraph, roofline: dict | None = None) -> np.ndarray:
    """``[nodes, 3]``: bytes read from activations, read from weights, written, under the reading rules of
    ``roofline`` (default :data:`ROOFLINE`; a model saved before a rule lacks its key).  ``bounded_reads``: what
    :data:`SUBSET_READERS` read is at most what they write, and :data:`METADATA_READERS` read nothing;
    ``weight_aliases``: an Identity of a weight moves nothing and its consumers read a weight."""
    roofline = roofline or ROOFLINE
    traffic = graph.node_x[:, _BYTES].astype(np.float64)
    if roofline.get("bounded_reads"):
        subset = SUBSET_READERS[graph.node_op]
        traffic[subset, :2] = np.minimum(traffic[subset, :2], traffic[subset, 2:3])
        traffic[METADATA_READERS[graph.node_op], :2] = 0.0
    if roofline.get("weight_aliases") and graph.num_edges:
        alias = weight_alias_nodes(graph)  # the reading rules above never touch an Identity's bytes
        src, dst = graph.edge_index
        moved = alias[src]
        if moved.any():
            tensor_bytes = graph.edge_x[moved, EDGE_FEATURES.index("bytes")]
            np.add.at(traffic[:, 0], dst[moved], -tensor_bytes)
            np.add.at(traffic[:, 1], dst[moved], tensor_bytes)
            traffic[:, 0] = np.maximum(traffic[:, 0], 0.0)
            traffic[alias] = 0.0
    return traffic


def roofline_ms(graph: PerfGraph, roofline: dict | None = None, traffic: np.ndarray | None = None) -> np.ndarray:
    """Each node's time on an ideal machine (``roofline``, default :data:`ROOFLINE`; a saved model keeps the
    one it was trained against): compute and traffic added, plus a launch."""
    roofline = roofline or ROOFLINE
    traffic = node_bytes(graph, roofline) if traffic is None else traffic
    return (graph.node_x[:, _FLOPS] / roofline["flops_per_ms"] + traffic.sum(axis=1) / roofline["bytes_per_ms"]
            + roofline["overhead_ms"])


def node_times(sample: Sample, split: np.ndarray | None = None) -> np.ndarray | None:
    """Measured time per node (NaN where no kernel labels it), each kernel's time split over its nodes in
    proportion to ``split`` (default: their :func:`roofline_ms`; a fit passes its previous round's predicted
    node times); None without a profile."""
    labels = sample.operators
    if labels is None:
        return None
    split = roofline_ms(sample.graph) if split is None else np.maximum(split, 1e-12)
    group = labels.node_group
    labelled = group >= 0
    group_split = np.bincount(group[labelled], weights=split[labelled], minlength=labels.groups)
    times = np.full(sample.graph.num_nodes, np.nan)
    times[labelled] = labels.group_ms[group[labelled]] * split[labelled] / group_split[group[labelled]]
    return times


def unique_rows(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``table`` and, per row, the index of its distinct row.  Rows compared as bytes
    (``np.unique(axis=0)`` sorts them column by column: 17 ms for 50 NAS-Bench-201 networks' 7,279 operators
    on the Intel Xeon, as long as walking their 2,035 distinct rows through 800 trees; as bytes 2.4 ms)."""
    table = np.ascontiguousarray(table)
    rows = table.view(np.dtype((np.void, table.dtype.itemsize * table.shape[1]))).reshape(-1)
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    return table[first], inverse.reshape(-1)


def composition_terms(graph: PerfGraph, operator_sum_ms: float) -> np.ndarray:
    """The whole-model terms of :data:`COMPOSITION_TERMS`."""
    return np.array([operator_sum_ms, graph.global_value("memory_sum") / 1e6, graph.num_nodes, 1.0,
                     operator_sum_ms * np.log(max(graph.batch_size, 1))])


@dataclass
class OperatorModel:
    """Trees over operators (flat arrays), the whole-model composition, and the learned fusion pairs."""

    arrays: dict[str, np.ndarray]
    params: dict  # tree init, "composition" coefficients, "roofline", "fused_pairs" [[op, producer op], …]
    metric: str = "infer_time_ms"
    _fused: set = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        self._fused = {(a, b) for a, b in self.params.get("fused_pairs", [])}

    def node_ms(self, graph: PerfGraph) -> np.ndarray:
        """Predicted time of each operator of ``graph``."""
        return self.nodes_ms([graph])[0]

    def nodes_ms(self, graphs: Sequence[PerfGraph]) -> list[np.ndarray]:
        """Predicted operator times of each graph.  All graphs' operators go through the trees in one walk, and
        repeated operators (a NAS network's cells, a batch of similar candidates) are walked once."""
        if not graphs:
            return []
        roofline = self.params["roofline"]
        traffic = [node_bytes(g, roofline) for g in graphs]  # read once, by both
        table = np.concatenate([operator_table(g, True, roofline, t) for g, t in zip(graphs, traffic)])
        roof = np.concatenate([roofline_ms(g, roofline, t) for g, t in zip(graphs, traffic)])
        return np.split(self.efficiency(table) * roof, np.cumsum([g.num_nodes for g in graphs])[:-1])

    def efficiency(self, table: np.ndarray) -> np.ndarray:
        """Each operator row's time over its roofline time; repeated rows are walked once."""
        if not len(table):
            return np.zeros(0)
        unique, inverse = unique_rows(table)
        return np.exp(predict_trees(unique, self.arrays, self.params))[inverse]

    def predict(self, graphs: Sequence[PerfGraph]) -> np.ndarray:
        return np.array([self.compose(g, float(t.sum())) for g, t in zip(graphs, self.nodes_ms(graphs))])

    def compose(self, graph: PerfGraph, operator_sum_ms: float) -> float:
        coefficients = self._composition()
        rest = composition_terms(graph, operator_sum_ms)[1:4] @ coefficients[1:4]
        return float(self.operator_scale(graph) * operator_sum_ms + rest)

    def operator_scale(self, graph: PerfGraph) -> float:
        """What the operators' summed time is multiplied by in the whole model's, at ``graph``'s batch."""
        a, e = self._composition()[[0, 4]]
        return float(max(a + e * np.log(max(graph.batch_size, 1)), MIN_OPERATOR_SCALE * a))

    def _composition(self) -> np.ndarray:
        """The coefficients of :data:`COMPOSITION_TERMS` (a model saved before the batch term: ``e`` = 0)."""
        coefficients = np.zeros(len(COMPOSITION_TERMS))
        given = np.asarray(self.params["composition"], dtype=np.float64)
        coefficients[:len(given)] = given
        return coefficients

    def fused_with_producer(self, graph: PerfGraph) -> np.ndarray:
        """Per node, whether a runtime most often runs it inside its first producer's kernel (bool)."""
        producer = first_producer(graph)
        return np.array([p >= 0 and (int(op), int(graph.node_op[p])) in self._fused
                         for op, p in zip(graph.node_op, producer)], dtype=bool)

    def save(self, directory: Path) -> None:
        save_arrays(self.arrays, directory / "operators.safetensors")

    @classmethod
    def load(cls, directory: Path, spec: dict) -> "OperatorModel":
        if list(spec.get("features", [])) not in (list(OPERATOR_FEATURES), list(OPERATOR_FEATURES[:-1])):
            raise ValueError("its operator trees were fitted on another operator feature set "
                             f"({len(spec.get('features', []))} columns, this version has {len(OPERATOR_FEATURES)}): "
                             "refit it with perfseer fit")
        arrays = load_arrays(directory / "operators.safetensors")
        return cls(arrays, dict(spec["params"]), spec.get("metric", "infer_time_ms"))

    def spec(self) -> dict:
        return {"metric": self.metric, "params": self.params, "features": list(OPERATOR_FEATURES)}


def _fused_pairs(samples: Sequence[Sample]) -> list[list[int]]:
    """(op, producer op) pairs that shared their producer's kernel in at least :data:`FUSED_SHARE` of the
    profiled cases (counted over every labelled node whose first producer is labelled too)."""
    together: dict[tuple[int, int], list[int]] = {}
    for s in samples:
        if s.operators is None or s.graph.num_edges == 0:
            continue
        group = s.operators.node_group
        producer = first_producer(s.graph)
        for b in np.flatnonzero(producer >= 0):
            a = producer[b]
            if group[a] >= 0 and group[b] >= 0:
                counts = together.setdefault((int(s.graph.node_op[b]), int(s.graph.node_op[a])), [0, 0])
                counts[0] += int(group[a] == group[b])
                counts[1] += 1
    return sorted([list(pair) for pair, (hit, seen) in together.items() if hit >= FUSED_SHARE * seen])


@dataclass
class _LabelledRows:
    """The labelled operators of one profiled sample, as the trees see them: built once, re-labelled each round."""

    sample: Sample
    labelled: np.ndarray  # node indices a kernel labels
    table: np.ndarray  # their operator_table rows
    roof: np.ndarray  # their roofline times
    weight: float  # the sample's total weight (1, or AUXILIARY_WEIGHT for another device's)

    def labels(self, split: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(target, weight) of each row, kernel times split in proportion to ``split`` (one per row)."""
        full = np.zeros(self.sample.graph.num_nodes)
        full[self.labelled] = split
        times = node_times(self.sample, full)[self.labelled]
        return (np.log(np.maximum(times, 1e-6) / self.roof),
                self.weight * (times / times.sum() + 1e-3 / max(1, len(times))))


def _labelled_rows(samples: Sequence[Sample], this_device: bool, weight: float, roofline: dict) -> list[_LabelledRows]:
    rows = []
    for s in samples:
        if s.operators is None:
            continue
        traffic = node_bytes(s.graph, roofline)
        labelled = np.flatnonzero(s.operators.node_group >= 0)
        rows.append(_LabelledRows(s, labelled, operator_table(s.graph, this_device, roofline, traffic)[labelled],
                                  roofline_ms(s.graph, roofline, traffic)[labelled], weight))
    return rows


def fit_operator_model(samples: Sequence[Sample], metric: str = "infer_time_ms", seed: int = 0,
                       prior: OperatorModel | None = None, auxiliary: Sequence[Sample] = (),
                       split_rounds: int = LABEL_SPLIT_ROUNDS) -> OperatorModel:
    """Trees on every profiled node of ``samples``; composition on every sample measured for ``metric``.

    Each model's labelled nodes weigh 1 together (by their share of its time), as its whole-model label does.
    The trees are fitted ``1 + split_rounds`` times, each round's fused kernels split by the round before's
    predicted node times (:data:`LABEL_SPLIT_ROUNDS`; the first round splits by roofline time).
    With ``prior`` (another device's operator model) the trees learn what differs from the prior's
    efficiencies and the result is both ensembles as one: a few calibration rows then correct a model that
    has seen tens of thousands of operators, instead of replacing it.  ``auxiliary``: profiled samples of
    other devices, in the trees' fit only (``this_device`` 0, weight :data:`AUXILIARY_WEIGHT` per model); the
    composition and the count of profiled models come from ``samples``."""
    from scipy.optimize import lsq_linear
    from sklearn.ensemble import HistGradientBoostingRegressor

    if metric != "infer_time_ms":
        raise ValueError(f"operator profiles measure inference only; cannot learn {metric} per operator")
    if not enough_profiles(samples):
        raise ValueError(f"operator trees need per-operator profiles of at least {MIN_PROFILED_MODELS} models, "
                         f"got {sum(s.operators is not None for s in samples)} "
                         "(measure with profiles: PERFSEER_PROFILE_OPERATORS=1)")
    roofline = dict(prior.params["roofline"]) if prior is not None else dict(ROOFLINE)
    rows = _labelled_rows(samples, True, 1.0, roofline) + _labelled_rows(auxiliary, False, AUXILIARY_WEIGHT, roofline)
    table, roof = np.concatenate([r.table for r in rows]), np.concatenate([r.roof for r in rows])
    offsets = np.cumsum([len(r.table) for r in rows])[:-1]
    prior_target = predict_trees(table, prior.arrays, prior.params) if prior is not None else 0.0
    per_leaf = int(np.clip(len(table) // 200, *MIN_SAMPLES_LEAF))
    rounds = 1 + max(split_rounds, 0)
    fixed = {"roofline": roofline, "composition": [1.0, 0.0, 0.0, 0.0, 0.0], "fused_pairs": _fused_pairs(samples),
             "label_split_rounds": rounds - 1}
    split = roof
    for k in range(rounds):
        if k:  # kernels split by the previous round's predicted node times
            split = model.efficiency(table) * roof
        labels = [r.labels(part) for r, part in zip(rows, np.split(split, offsets))]
        trees = HistGradientBoostingRegressor(**(TREE_PARAMS if k == rounds - 1 else SPLIT_ROUND_PARAMS),
                                              min_samples_leaf=per_leaf, random_state=seed).fit(
            table, np.concatenate([t for t, _ in labels]) - prior_target,
            sample_weight=np.concatenate([w for _, w in labels]))
        arrays, params = export_trees(trees)
        if prior is not None:
            arrays, params = merge_trees((prior.arrays, {"init": prior.params["init"]}), (arrays, params))
        model = OperatorModel(arrays, {**params, **fixed}, metric)
    measured = [s for s in samples if s.targets.get(metric, 0) > 0]
    if measured:
        sums = [float(t.sum()) for t in model.nodes_ms([s.graph for s in measured])]
        terms = np.stack([composition_terms(s.graph, total) for s, total in zip(measured, sums)])
        truth = np.array([s.targets[metric] for s in measured])
        lower = np.zeros(len(COMPOSITION_TERMS))
        lower[COMPOSITION_TERMS.index("sum of operator times × log batch")] = -np.inf
        coefficients = lsq_linear(terms / truth[:, None], np.ones(len(truth)), bounds=(lower, np.inf)).x
        if coefficients[0] > 0:  # a composition that ignores the operators would not be an operator model
            model.params["composition"] = [float(c) for c in coefficients]
    return model


def save_operator_model(model: OperatorModel, directory: Path, manifest: dict, base: Path | None = None,
                        memory_line: dict | None = None) -> Path:
    """An operator predictor directory: ``operators.safetensors`` + ``manifest.json`` (``kind: operators``);
    with ``base`` (a SeerNet predictor directory) copied into ``base/``, which serves the other metrics;
    ``memory_line`` (``seernet.fit.memory_line_for``) serves its metric instead of the base."""
    import shutil

    from .predictor import MANIFEST, manifest_version

    if base is not None and Path(base).resolve() == Path(directory).resolve():
        raise ValueError(f"the base predictor {base} is the output directory: copy it elsewhere first")
    directory.mkdir(parents=True, exist_ok=True)
    for stale in [*directory.glob("member-*.safetensors"), directory / "tabular.safetensors"]:
        stale.unlink(missing_ok=True)  # another kind's weights, from a predictor this one replaces
    model.save(directory)
    weights = [directory / "operators.safetensors"]
    metrics = [model.metric]
    if base is not None:
        target = directory / "base"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(base, target)
        base_manifest = json.loads((target / MANIFEST).read_text())
        metrics += [m for m in base_manifest["metrics"] if m != model.metric]
        weights += sorted(target.glob("*.safetensors")) + [target / MANIFEST]
    if memory_line is not None and memory_line["metric"] not in metrics:
        metrics.insert(1, memory_line["metric"])
    manifest = {**manifest, "kind": "operators", "operators": model.spec(), "metrics": metrics, "members": 1,
                "base": "base" if base is not None else None,
                **({"memory_line": memory_line} if memory_line is not None else {})}
    manifest["version"] = manifest_version(manifest, weights)
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return directory


__all__ = ["AUXILIARY_WEIGHT", "LABEL_SPLIT_ROUNDS", "OPERATOR_FEATURES", "OperatorModel", "enough_profiles",
           "first_producer", "fit_operator_model", "node_bytes", "node_times", "operator_table", "roofline_ms",
           "save_operator_model", "weight_alias_nodes"]

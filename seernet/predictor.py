"""Trained predictors on disk, and the one object that turns models into predictions.

A predictor directory holds ``manifest.json`` (metrics, architecture, feature
schema, normalisers, dataset hash, validation scores, version) and one
``member-K.safetensors`` per ensemble member.  safetensors holds tensors only,
so loading a checkpoint can never execute code.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .data import Sample
from .features import FeatureNormalizer
from .graph import FEATURE_SCHEMA_VERSION, PerfGraph, build_graph
from .loader import ModelSource
from .memory_line import predict_memory
from .nn import SeerNet, SeerNetConfig
from .nn.onnx_ensemble import OnnxEnsemble, exportable
from .nn.plan import Plan, compressed_plan, identity_plan
from .op_vocab import OP_VOCAB
from .normalize import TargetNormalizer
from .inference_batch import InferenceBatch
from .scores import score
from .train import TrainedEnsemble

MANIFEST = "manifest.json"


class PredictorLoadError(RuntimeError):
    """A predictor directory is missing, incomplete, corrupt, or for another feature schema."""


def save_predictor(ensemble: TrainedEnsemble, directory: str | Path, name: str, device_key: str,
                   extra: dict | None = None) -> Path:
    """Write ``ensemble`` to ``directory``; the version is a hash of its weights and manifest."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for k, member in enumerate(ensemble.members):
        save_file({n: t.contiguous() for n, t in member.state_dict().items()}, str(directory / f"member-{k}.safetensors"))
    manifest = {
        "name": name,
        "device_key": device_key,
        "metrics": list(ensemble.net_config.metrics),
        "seernet": ensemble.net_config.to_dict(),
        "feature_schema_version": FEATURE_SCHEMA_VERSION,
        "features": ensemble.features.to_dict(),
        "targets": ensemble.targets.to_dict(),
        "members": len(ensemble.members),
        "training": [{k: v for k, v in r.items() if k != "history"} for r in ensemble.reports],
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(extra or {}),
    }
    return write_manifest(directory, manifest)


def manifest_version(manifest: dict, weight_files: Sequence[Path]) -> str:
    """A hash of the weight files and the manifest itself, so any change to either (even bounds added to a
    trained predictor) is a new version."""
    digest = hashlib.sha256()
    for path in weight_files:
        digest.update(path.read_bytes())
    digest.update(json.dumps({k: v for k, v in manifest.items() if k != "version"}, sort_keys=True).encode())
    return digest.hexdigest()[:12]


def write_manifest(directory: Path, manifest: dict) -> Path:
    """Write ``manifest`` with its version (:func:`manifest_version` of the member weights and itself)."""
    manifest = {k: v for k, v in manifest.items() if k != "version"}
    members = [directory / f"member-{k}.safetensors" for k in range(int(manifest["members"]))]
    manifest["version"] = manifest_version(manifest, members)
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return directory


@dataclass
class Prediction:
    values: dict[str, float]
    uncertainty: dict[str, float]  # std of log(value) across the ensemble ≈ relative uncertainty


class ServedPredictor:
    """What every predictor on disk offers the server and the CLI: identity from its manifest, and graphs in,
    predictions out — ``encode`` on the request's thread, ``predict_encoded`` on the batching thread."""

    def __init__(self, manifest: dict, members: list, directory: Path | None = None) -> None:
        self.manifest = manifest
        self.members = members
        self.directory = directory
        self.metrics: tuple[str, ...] = tuple(manifest["metrics"])

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def device_key(self) -> str:
        return str(self.manifest.get("device_key", ""))

    def warm(self) -> None:
        """Make now whatever the first prediction would otherwise make (the server calls it at load, so a
        predictor that cannot serve is refused then, and no request pays for it)."""

    def encode(self, graph: PerfGraph) -> object:
        raise NotImplementedError

    def predict_encoded(self, items: Sequence) -> list[Prediction]:
        raise NotImplementedError

    def predict_graphs(self, graphs: Sequence[PerfGraph]) -> list[Prediction]:
        """One pass over all ``graphs`` at once (micro-batching happens here)."""
        return self.predict_encoded([self.encode(g) for g in graphs])

    def predict(self, source: ModelSource, batch_size: int = 1, **graph_kwargs: object) -> Prediction:
        return self.predict_graphs([build_graph(source, batch_size=batch_size, **graph_kwargs)])[0]


class Predictor(ServedPredictor):
    """A loaded SeerNet predictor: ONNX or graphs in, metric values (and uncertainties) out."""

    def __init__(self, manifest: dict, members: list[SeerNet], directory: Path | None = None) -> None:
        super().__init__(manifest, members, directory)
        self.features = FeatureNormalizer.from_dict(manifest["features"])
        self.targets = TargetNormalizer.from_dict(manifest["targets"])
        # the network's heads, in output order; ``metrics`` (what is served) may be a subset of them
        self.network_metrics: tuple[str, ...] = tuple(manifest.get("network_metrics", self.metrics))
        self._columns = [self.network_metrics.index(m) for m in self.metrics]
        # a device calibration by a line in log space: log y = a + b·log(network's y)  (seernet.rescale)
        self.log_affine: dict[str, tuple[float, float]] = {
            m: (float(v["a"]), float(v["b"])) for m, v in manifest.get("log_affine", {}).items()}
        self._exported: OnnxEnsemble | None = None  # made by warm() or the first prediction (~0.2 s)

    # graphs per pass, at most: larger passes spill a core's L2 cache, smaller ones pay the per-operation cost
    # again.  Measured on 100 NAS-Bench-201 graphs, scaling + plan + onnxruntime forward, interleaved, median of 5
    # (Intel Xeon, 2 MB L2 a core, session 15): passes of 10: 0.77 ms a graph, 25: 0.67, 32: 0.69, 50: 0.77,
    # 100: 0.92 (an ad-hoc timing of Predictor.passes' sizes; re-measure when the network changes)
    PASS_GRAPHS = 32
    # operators + tensors per pass, at most (a graph larger than this goes alone): what bounds a pass's memory.
    # One graph of 20,000 operators and 200,000 tensors with nothing to compress (the request limits until
    # session 15; max_edges is now 100,000) peaks at ~550 MB over idle and 3.5 s on one Intel Xeon thread; three
    # of them in one pass took 1.6 GB, and the batcher's operator cap alone would let a burst of them meet.
    PASS_ROWS = 250_000

    @classmethod
    def passes(cls, graphs: Sequence[PerfGraph]) -> list[Sequence[PerfGraph]]:
        """``graphs`` cut into passes of equal size, at most :attr:`PASS_GRAPHS` each (50 graphs go as
        25 + 25, not 32 + 18), each cut again where its operators and tensors pass :attr:`PASS_ROWS`."""
        count = -(-len(graphs) // cls.PASS_GRAPHS)
        ends = [len(graphs) * (k + 1) // count for k in range(count)]
        out: list[Sequence[PerfGraph]] = []
        for start, end in zip([0, *ends], ends):
            rows = 0
            for k in range(start, end):
                size = graphs[k].num_nodes + graphs[k].num_edges
                if rows and rows + size > cls.PASS_ROWS:
                    out.append(graphs[start:k])
                    start, rows = k, 0
                rows += size
            out.append(graphs[start:end])
        return out

    def warm(self) -> None:
        if exportable(self.members[0].config):
            try:
                self.exported()
            except Exception as exc:  # onnx's checker and onnxruntime each raise their own types
                raise PredictorLoadError(f"cannot export predictor {self.name} for onnxruntime: "
                                         f"{type(exc).__name__}: {str(exc)[:300]}") from None

    def exported(self) -> OnnxEnsemble:
        """Every member as one onnxruntime graph (``seernet.nn.onnx_ensemble``), made once, on as many threads
        as torch has at that moment (``perfseer serve --torch-threads``: one per serving process by default)."""
        if self._exported is None:
            self._exported = OnnxEnsemble(self.members, threads=torch.get_num_threads())
        return self._exported

    def _forward(self, graphs: Sequence[PerfGraph]) -> np.ndarray:
        """``[members, graphs, outputs]``: every member's output, in exported passes where the architecture allows
        (``seernet.nn.onnx_ensemble``), else member by member over all the graphs at once."""
        layers = self.members[0].config.layers
        if exportable(self.members[0].config):
            parts = []
            for graphs_of_pass in self.passes(graphs):
                batch = InferenceBatch.from_graphs(graphs_of_pass, self.features)
                parts.append(self.exported()(batch, inference_plan(batch, layers)))
            return np.concatenate(parts, axis=1)
        batch = InferenceBatch.from_graphs(graphs, self.features)
        plan = inference_plan(batch, layers)  # one plan serves every member
        return np.stack([m(batch, plan).numpy() for m in self.members])

    @classmethod
    def load(cls, directory: str | Path) -> "Predictor | TabularPredictor | OperatorPredictor":
        """The predictor in ``directory``: SeerNet, a tabular model where ``fit`` measured that one better, or
        an operator model (with the SeerNet predictor it carries for the metrics it does not learn)."""
        directory = Path(directory)
        try:
            manifest = json.loads((directory / MANIFEST).read_text())
            if manifest.get("kind") == "tabular":
                from .tabular import TabularModel

                return TabularPredictor(manifest, TabularModel.load(directory, manifest["tabular"]), directory)
            if manifest.get("kind") == "operators":
                from .operator_trees import OperatorModel

                base = cls.load(directory / manifest["base"]) if manifest.get("base") else None
                return OperatorPredictor(manifest, OperatorModel.load(directory, manifest["operators"]), base,
                                         directory)
            config = SeerNetConfig.from_dict(manifest["seernet"])
            members = []
            for k in range(int(manifest["members"])):
                model = SeerNet(config)
                model.load_state_dict(load_file(str(directory / f"member-{k}.safetensors")))
                members.append(model.eval())
            return cls(manifest, members, directory)
        except Exception as exc:  # safetensors, torch and json each raise their own types for a bad file
            raise PredictorLoadError(f"cannot load predictor from {directory}: {type(exc).__name__}: {exc}") from None

    @classmethod
    def from_ensemble(cls, ensemble: TrainedEnsemble, name: str = "in-memory", device_key: str = "") -> "Predictor":
        manifest = {"name": name, "version": "unsaved", "device_key": device_key,
                    "metrics": list(ensemble.net_config.metrics), "features": ensemble.features.to_dict(),
                    "targets": ensemble.targets.to_dict()}
        return cls(manifest, ensemble.members)

    def encode(self, graph: PerfGraph) -> PerfGraph:
        """The graph itself: its features are scaled per batch in :meth:`predict_encoded`, vectorised over
        every graph of the batch (``seernet.inference_batch``), which costs a fraction of scaling each alone."""
        return graph

    @torch.inference_mode()
    def predict_encoded(self, items: Sequence[PerfGraph]) -> list[Prediction]:
        """Predictions for encoded graphs: every member over all of them, in as few passes as pay."""
        if not items:
            return []
        encoded = self._forward(items)
        values = self.targets.decode(encoded.mean(axis=0))[:, self._columns]
        spread = (self.targets.decode_log_std(encoded.std(axis=0)) if len(self.members) > 1
                  else np.full(encoded.shape[1:], np.nan))[:, self._columns]
        for k, metric in enumerate(self.metrics):
            if metric in self.log_affine:
                a, b = self.log_affine[metric]
                values[:, k] = np.exp(a + b * np.log(values[:, k]))
                spread[:, k] = spread[:, k] * abs(b)
        return [Prediction({m: float(values[i, k]) for k, m in enumerate(self.metrics)},
                           {m: float(spread[i, k]) for k, m in enumerate(self.metrics)}) for i in range(len(items))]

    @torch.inference_mode()
    def explain(self, graph: PerfGraph, prediction: Prediction, metric: str = "infer_time_ms",
                top: int = 20) -> list[dict]:
        """The ``top`` costliest operators for ``metric``, largest first: each operator's share of the additive
        read-out's sum (mean over members), applied to the predicted total.  ``fused`` lists the nodes a runtime
        runs in the same kernel; graphs carry no fusion map yet, so it holds the node alone."""
        if metric not in self.metrics:
            raise ValueError(f"predictor {self.name} does not predict {metric}")
        k = self.network_metrics.index(metric)
        data = InferenceBatch.from_graphs([graph], self.features)
        shares = np.mean([torch.softmax(m.operator_costs(data)[:, k], dim=0).numpy() for m in self.members], axis=0)
        names = graph.node_names or [f"{OP_VOCAB[int(i)]}_{n}" for n, i in enumerate(graph.node_op)]
        ops = graph.op_types or [OP_VOCAB[int(i)] for i in graph.node_op]
        total = prediction.values[metric]
        return [{"node": names[i], "op_type": ops[i], metric: float(shares[i] * total), "share": float(shares[i]),
                 "fused": [names[i]]} for i in np.argsort(-shares)[:max(0, top)]]


class TabularPredictor(ServedPredictor):
    """A ridge or tree model on per-operator-type counts and costs (``seernet.tabular``), served like SeerNet.

    It has one member, so its uncertainty is NaN (unknown), as for a one-member SeerNet.
    """

    def __init__(self, manifest: dict, model: object, directory: Path | None = None) -> None:
        super().__init__(manifest, [model], directory)
        self.model = model

    def encode(self, graph: PerfGraph) -> np.ndarray:
        return self.model.features([graph])[0]

    def predict_encoded(self, items: Sequence[np.ndarray]) -> list[Prediction]:
        if not len(items):
            return []
        values = np.exp(self.model.predict_log(np.stack(items)))
        metric = self.metrics[0]
        return [Prediction({metric: float(v)}, {metric: math.nan}) for v in values]


class OperatorPredictor(ServedPredictor):
    """Inference time as the sum of predicted operator times (``seernet.operator_trees``); inference memory,
    where the manifest carries a ``memory_line``, from weights and live activations (``seernet.memory_line``);
    the other metrics, where the directory carries a SeerNet ``base``, from that network.  Its own metrics'
    uncertainty is NaN (unknown)."""

    def __init__(self, manifest: dict, model: object, base: ServedPredictor | None = None,
                 directory: Path | None = None) -> None:
        super().__init__(manifest, [model], directory)
        self.model = model
        self.base = base
        self.memory_line = manifest.get("memory_line")  # seernet.memory_line: inference memory, where fitted

    def warm(self) -> None:
        if self.base is not None:
            self.base.warm()

    def encode(self, graph: PerfGraph) -> PerfGraph:
        return graph

    def predict_encoded(self, items: Sequence[PerfGraph]) -> list[Prediction]:
        if not items:
            return []
        own = {self.model.metric: self.model.predict(items)}
        if self.memory_line is not None:
            own[self.memory_line["metric"]] = predict_memory(items, self.memory_line["coefficients"])
        others = [m for m in self.metrics if m not in own]
        base = self.base.predict_graphs(items) if self.base is not None and others else \
            [Prediction({}, {}) for _ in items]
        return [Prediction({m: float(own[m][i]) if m in own else b.values[m] for m in self.metrics},
                           {m: math.nan if m in own else b.uncertainty[m] for m in self.metrics})
                for i, b in enumerate(base)]

    def explain(self, graph: PerfGraph, prediction: Prediction, metric: str = "infer_time_ms",
                top: int = 20) -> list[dict]:
        """The ``top`` costliest kernels, largest first.  A kernel is an operator with the nodes the profiles
        say a runtime fuses into it (``fused``); its time is its operators' predicted times scaled as the
        whole-model composition scales their sum, so shares add up to the operators' part of the total (the
        rest is time between kernels)."""
        if metric != self.model.metric:
            raise ValueError(f"predictor {self.name} breaks down {self.model.metric} only, not {metric}")
        from .operator_trees import first_producer

        times = self.model.node_ms(graph) * self.model.operator_scale(graph)
        owner = np.arange(graph.num_nodes)
        producer = first_producer(graph)
        for node in np.flatnonzero(self.model.fused_with_producer(graph)):
            owner[node] = owner[producer[node]]  # nodes are in topological order: the producer's owner is final
        kernel_ms = np.bincount(owner, weights=times, minlength=graph.num_nodes)
        names = graph.node_names or [f"{OP_VOCAB[int(i)]}_{n}" for n, i in enumerate(graph.node_op)]
        ops = graph.op_types or [OP_VOCAB[int(i)] for i in graph.node_op]
        total = prediction.values[metric]
        heads = [i for i in np.argsort(-kernel_ms) if owner[i] == i][:max(0, top)]
        return [{"node": names[i], "op_type": ops[i], metric: float(kernel_ms[i]),
                 "share": float(kernel_ms[i] / total) if total > 0 else 0.0,
                 "fused": [names[j] for j in np.flatnonzero(owner == i)]} for i in heads]


def network_of(predictor: ServedPredictor) -> "Predictor | None":
    """The SeerNet behind ``predictor``: itself, an operator predictor's base, else None (tabular models,
    operator trees alone).  What transfer learning starts from and what ranks candidates by ensemble spread."""
    if isinstance(predictor, OperatorPredictor):
        predictor = predictor.base
    return predictor if isinstance(predictor, Predictor) else None


# A pass of at most this many operators computes every row: finding the classes costs a fixed ~0.4 ms that a
# lone small network does not earn back (one Intel Xeon thread, session 21, plan + onnxruntime forward, one graph
# alone: ResNet-18's 65 operators 1.66 -> 1.14 ms, VGG-11's 28 1.39 -> 0.84, MobileNet-V2's 139 2.14 -> 1.78,
# ResNet-50's 169 level at 2.03, BERT-mini's 191 1.70 -> 2.25, ViT-tiny's 574 2.15 -> 5.51; NAS-Bench-201
# networks of 25-280 operators, 200 of them one by one, 2.09 ms median either way)
COMPRESS_ABOVE_NODES = 150


def inference_plan(batch: InferenceBatch, layers: int) -> Plan:
    """The rows inference computes for ``batch``: one per class of identical nodes (``seernet.nn.plan``), or every
    row for a pass too small to pay for finding the classes (:data:`COMPRESS_ABOVE_NODES`)."""
    if batch.x.size(0) <= COMPRESS_ABOVE_NODES:
        return identity_plan(batch.x.size(0), batch.edge_index, batch.batch, int(batch.u.size(0)), layers)
    node_features = np.concatenate([batch.x.numpy(), batch.op.numpy()[:, None], batch.category.numpy()[:, None],
                                    batch.work.numpy()], axis=1)
    return compressed_plan(node_features, batch.edge_attr.numpy(), batch.edge_index.numpy(), batch.batch.numpy(),
                           int(batch.u.size(0)), layers)


def mean_mape(predictor: Predictor, samples: Sequence[Sample]) -> float:
    """Mean MAPE over the predictor's metrics that ``samples`` measured; inf if it predicts garbage.
    How promotion and the evaluation's save step compare a candidate with the serving version."""
    predictions = predictor.predict_graphs([s.graph for s in samples])
    mapes = []
    for metric in predictor.metrics:
        p = np.array([pr.values[metric] for pr in predictions])
        t = np.array([s.targets.get(metric, np.nan) for s in samples])
        if not np.all(np.isfinite(p)):
            return math.inf
        result = score(p, t)
        if "mape" in result:
            mapes.append(result["mape"])
    return float(np.mean(mapes)) if mapes else math.inf

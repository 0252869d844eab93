"""``perfseer calibrate``: a predictor for the machine it runs on, within a time budget.

No user owns the machine the shipped predictor was trained on, and absolute
timings do not transfer between CPUs (the shipped predictor is 1.4× off on an
Intel Xeon for an AMD EPYC's rows).  Calibration measures, on the user's own
machine and execution settings, the models that teach the most per minute, then
lets ``fit`` choose between fine-tuning the shipped network and simple models,
and scores the choice on measured rows no candidate saw:

1. **pool**: configs drawn from every model space, each exported once (its graph
   is cached for fitting, its ONNX kept for measuring) and ranked by the shipped
   predictor's ensemble spread — the models it is least sure of;
2. **order**: round-robin over strata (family × FLOPs half-decade), most
   uncertain first within each, so a budget that ends early still spans families
   and sizes;
3. **measure** in that order until the measuring share of the budget is spent
   (one process per measurement, pinned; resumable: a rerun skips what is stored);
4. **fit** on all but a held-out fifth (``seernet.fit.select_and_fit``: SeerNet
   fine-tuned from the shipped predictor, from scratch, ridge, trees), **score**
   the chosen model, the shipped predictor and the shipped predictor scaled by one
   fitted constant on the held-out rows, and **save** under ``out/name`` with the
   device key (CPU model, threads, graph optimisation) and runtime versions.
"""
from __future__ import annotations

import json
import logging
import math
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from seernet.data import Sample, samples_from_rows
from seernet.memory_line import METRIC as MEMORY_METRIC
from seernet.fit import FIT_METHODS, FitRequest, save_candidate, select_and_fit, selection_summary, split_for_fit
from seernet.graph_cache import graph_for, store_stripped
from seernet.predictor import Predictor, PredictorLoadError, ServedPredictor, network_of
from seernet.scores import score
from seernet.settings import cache_dir
from seernet.spaces import ModelConfig, get_space
from seernet.train import TrainConfig
from seernet.training_run import ManifestInfo

from .auxiliary import check_auxiliary_use, other_device_samples
from .dataset_build import BuildPlan
from .device_info import describe_device, device_key
from .job import ProfileJob
from .measure import measure_job
from .settings import CALIBRATE_MAX_GFLOPS, ProfileSettings

log = logging.getLogger(__name__)

SELECT_SHARE = 0.15  # of the budget: drawing, exporting and ranking the pool
FIT_SHARE = 0.30  # of the budget: kept for fitting and scoring
MIN_ROWS = 10  # measured rows below which no calibrated predictor is written
MAX_POOL = 2000


class CalibrationError(ValueError):
    """Calibration cannot produce a predictor (too small a budget, nothing measured…): the message says why."""


@dataclass
class CalibrationRequest:
    device: str = "cpu"
    threads: int = 1  # 0: the runtime's default
    budget_minutes: float = 10.0
    out: Path = Path("predictors")
    name: str = ""  # default: from the device key
    pretrained: Path | None = Path("predictors/cpu")
    target: str = "infer_time_ms"
    seed: int = 0
    cpus: tuple[int, ...] | None = None
    time_cap_s: float = 0.25
    max_gflops: float = CALIBRATE_MAX_GFLOPS
    max_models: int = 0  # stop measuring once this many are measured, earlier runs included (0: the budget decides)
    graph_optimization: str = "all"
    methods: tuple[str, ...] = FIT_METHODS
    # the method chosen unless another ranks the held-out calibration rows clearly better (seernet.fit)
    prefer: str | None = "operator_trees"
    workdir: Path | None = None  # default: the cache directory, per name
    auxiliary: tuple[Path, ...] = ()  # other devices' profiled datasets, learned from by operator trees
    progress: bool = True

    def settings(self) -> ProfileSettings:
        """Inference rows are profiled per operator (a few profiled runs after the timing): each model then
        teaches operator trees tens to hundreds of kernel times, which is what transfers to architectures
        the calibration never measured."""
        modes = ("train",) if self.target.startswith("train_") else ("infer",)
        profile = modes == ("infer",) and "operator_trees" in self.methods
        return ProfileSettings(device=self.device, threads=self.threads, cpu_affinity=self.cpus,
                               time_cap_s=self.time_cap_s, modes=modes, op_profile=profile,
                               op_profile_repeats=CALIBRATION_PROFILE_REPEATS,
                               graph_optimization=self.graph_optimization)


CALIBRATION_PROFILE_REPEATS = 5  # profiled runs per model (the dataset takes 10): a budget buys more models


@dataclass
class PoolEntry:
    """One candidate: its config, how big it is, how unsure the shipped predictor is of it."""

    config: ModelConfig
    family: str
    gflops: float
    uncertainty: float
    onnx_path: str

    @property
    def job_id(self) -> str:
        return ProfileJob.for_config(self.config).job_id

    @property
    def stratum(self) -> tuple[str, int]:
        return self.family, int(math.floor(2 * math.log10(max(self.gflops, 1e-6))))

    def to_dict(self) -> dict:
        return {"config": self.config.to_dict(), "family": self.family, "gflops": self.gflops,
                "uncertainty": self.uncertainty, "onnx_path": self.onnx_path}

    @classmethod
    def from_dict(cls, data: dict) -> "PoolEntry":
        return cls(ModelConfig.from_dict(data["config"]), data["family"], float(data["gflops"]),
                   float(data["uncertainty"]), data["onnx_path"])


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "device"


def measurement_order(pool: Sequence[PoolEntry]) -> list[PoolEntry]:
    """Round-robin over strata (family × FLOPs half-decade), the most uncertain first within each: what a
    budget that stops early has measured is still spread over families and sizes."""
    strata: dict[tuple[str, int], list[PoolEntry]] = {}
    for entry in pool:
        strata.setdefault(entry.stratum, []).append(entry)
    queues = [sorted(entries, key=lambda e: -(e.uncertainty if math.isfinite(e.uncertainty) else 0.0))
              for _, entries in sorted(strata.items())]
    order = []
    while any(queues):
        for q in queues:
            if q:
                order.append(q.pop(0))
    return order


class Calibration:
    """One calibration run; state lives in ``workdir`` (pool, exports, measurements) so a rerun resumes."""

    def __init__(self, request: CalibrationRequest) -> None:
        self.request = request
        self.settings = request.settings()
        self.descriptor = describe_device(self.settings.device, self.settings.threads, self.settings.cpu_affinity,
                                          self.settings.graph_optimization)
        self.device_key = device_key(self.descriptor)
        self.name = request.name or f"{self.settings.device.split(':')[0]}-{slug(self.descriptor['cpu_model'])}-" \
                                    f"{self.settings.threads}t"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}", self.name):
            raise CalibrationError(f"--name must be 1-80 letters, digits, '.', '_' or '-', got {self.name!r}")
        missing = [str(p) for p in request.auxiliary if not Path(p).is_file()]
        if missing:  # said before the budget is spent, not after
            raise CalibrationError(f"--auxiliary-dataset {', '.join(missing)}: not a dataset file")
        try:
            check_auxiliary_use(request.auxiliary, request.target, request.methods)
        except ValueError as exc:
            raise CalibrationError(str(exc)) from None
        self.workdir = request.workdir or cache_dir() / "calibrate" / self.name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pool_file = self.workdir / "pool.jsonl"
        self.shipped = self._load_shipped()
        self.shipped_network = network_of(self.shipped) if self.shipped is not None else None

    def _load_shipped(self) -> ServedPredictor | None:
        """The predictor calibration starts from: a SeerNet, or an operator predictor with a SeerNet base
        (calibrated operator trees then learn what differs from its trees)."""
        path = self.request.pretrained
        if path is None:
            return None
        try:
            predictor = Predictor.load(path)
        except PredictorLoadError as exc:
            raise CalibrationError(f"--pretrained {path}: {exc}") from None
        if network_of(predictor) is None or self.request.target not in predictor.metrics:
            raise CalibrationError(f"--pretrained {path} is neither a SeerNet predictor of {self.request.target} "
                                   "nor an operator predictor with a SeerNet base")
        return predictor

    def _uncertainty(self, graph) -> float:
        """The shipped ensemble's spread on ``graph`` (an operator predictor's base network's: trees have none)."""
        assert self.shipped_network is not None
        return self.shipped_network.predict_graphs([graph])[0].uncertainty.get(self.request.target, math.nan)

    # ------------------------------------------------------------------ 1. pool
    def read_pool(self) -> list[PoolEntry]:
        if not self.pool_file.exists():
            return []
        return [PoolEntry.from_dict(json.loads(line)) for line in self.pool_file.read_text().splitlines()
                if line.strip()]

    def grow_pool(self, deadline: float, limit: int = MAX_POOL) -> list[PoolEntry]:
        """Draw, export and rank candidates until ``deadline`` (resuming the pool already drawn)."""
        from seernet.export import export_config

        pool = self.read_pool()
        seen = {e.config.config_id for e in pool}
        plan = BuildPlan.for_space("all", limit, self.request.seed, self.request.max_gflops)
        onnx_dir = self.workdir / "onnx"
        onnx_dir.mkdir(exist_ok=True)
        bar = tqdm(total=limit, initial=len(pool), desc="choosing models", unit="model",
                   disable=not self.request.progress, mininterval=2)
        with self.pool_file.open("a") as out:
            index = len(pool)
            while len(pool) < limit and time.monotonic() < deadline and index < 4 * limit:
                config = plan.config_at(index)
                index += 1
                if config.config_id in seen:
                    continue
                seen.add(config.config_id)
                try:
                    onnx = export_config(config)
                    store_stripped(config, onnx, cache_dir() / "onnx")
                    graph = graph_for(config)
                except Exception as exc:  # a config that cannot be exported is not a candidate
                    log.warning("skipping %s: %s", config.config_id, exc)
                    continue
                path = onnx_dir / f"{config.config_id}.onnx"
                path.write_bytes(onnx)
                spread = math.nan
                if self.shipped is not None:
                    spread = self._uncertainty(graph)
                entry = PoolEntry(config, get_space(config.space).family, graph.global_value("flops_sum") / 1e9,
                                  float(spread), str(path))
                pool.append(entry)
                out.write(json.dumps(entry.to_dict()) + "\n")
                out.flush()
                bar.update(1)
        bar.close()
        return pool

    # ------------------------------------------------------------------ 2-3. measure
    def store(self):
        from .store import DatasetStore

        return DatasetStore(self.workdir / "measurements.sqlite")

    def measure(self, pool: Sequence[PoolEntry], deadline: float, limit: int = 0) -> dict[str, int]:
        """Measure in :func:`measurement_order` until ``deadline``, or until the store holds ``limit`` models
        (earlier runs included; 0: no limit)."""
        store = self.store()
        done = store.job_ids()
        order = [e for e in measurement_order(pool)
                 if ProfileJob.for_config(e.config, self.settings.device).job_id not in done]
        counts = {"ok": 0, "partial": 0, "failed": 0, "already": len(pool) - len(order)}
        bar = tqdm(order, desc=f"measuring on {self.device_key}", unit="model", disable=not self.request.progress,
                   mininterval=2)
        for entry in bar:
            if time.monotonic() >= deadline or (limit and len(done) >= limit):
                break
            job = ProfileJob.for_config(entry.config, self.settings.device)
            onnx = Path(entry.onnx_path).read_bytes() if Path(entry.onnx_path).exists() else None
            result = measure_job(job, self.settings, exported=onnx)
            store.add(result)
            done.add(job.job_id)
            counts[result.status] += 1
            bar.set_postfix(counts, refresh=False)
        bar.close()
        return counts

    # ------------------------------------------------------------------ 4. fit, score, save
    def measured_count(self) -> int:
        return len(self.store().job_ids())

    def measured_samples(self) -> list[Sample]:
        store = self.store()
        rows = [r for r in store.rows() if r.get(self.request.target)]
        # inference memory too: an operator predictor carries a memory line where its rows measured it
        return samples_from_rows(rows, (self.request.target, MEMORY_METRIC), device_key=self.device_key,
                                 progress=False,
                                 kernels=store.operator_kernels({r["job_id"] for r in rows}))

    def fit(self, fit_minutes: float) -> dict:
        target = self.request.target
        samples = self.measured_samples()
        if len(samples) < MIN_ROWS:
            raise CalibrationError(f"measured {len(samples)} models on {self.device_key}, fewer than the {MIN_ROWS} "
                                   "a calibrated predictor needs: raise --budget-minutes (or --time-cap lower)")
        order = sorted(samples, key=lambda s: s.key)
        random.Random(self.request.seed).shuffle(order)
        n_test = max(3, len(order) // 5)
        test, rows = order[:n_test], order[n_test:]
        networks = sum(m.startswith("seernet") for m in self.request.methods) or 1
        train_config = TrainConfig(epochs=150, ensemble=2, patience=20, progress=False,
                                   max_minutes=max(0.2, 0.8 * fit_minutes / (2 * networks)))
        fit_request = FitRequest(self.store().path, target, None, None,
                                 self.request.pretrained if self.shipped is not None else None, train_config,
                                 seed=self.request.seed, prefer=self.request.prefer,
                                 auxiliary=self.auxiliary_samples())
        best, candidates = select_and_fit(rows, target, fit_request, self.request.methods)
        truth = np.array([s.targets[target] for s in test])
        held_out = {"calibrated": score(best.predict(test), truth)}
        if self.shipped is not None:
            shipped_test = self._shipped(test)
            ratio = float(np.exp(np.median(np.log(np.array([s.targets[target] for s in rows]) / self._shipped(rows)))))
            held_out["shipped"] = score(shipped_test, truth)
            held_out["shipped_scaled"] = {**score(shipped_test * ratio, truth), "scale": ratio}
        train, val = split_for_fit(rows, fit_request)
        summary = {
            "name": self.name, "device_key": self.device_key, "target": target, "measured": len(samples),
            "held_out_rows": len(test), "held_out": held_out,
            "selection": selection_summary(best, candidates, self.request.prefer),
            "families": _count(s.family for s in samples),
            "device": {k: self.descriptor[k] for k in ("cpu_model", "cpu_cores", "threads", "graph_optimization",
                                                       "libraries") if k in self.descriptor},
        }
        out = self.request.out / self.name
        info = ManifestInfo(self.name, self.device_key, split={"kind": "calibration", "seed": self.request.seed,
                                                                "held_out": len(test)},
                            source={"calibration": summary,
                                    "pretrained": str(self.request.pretrained) if self.shipped else None})
        save_candidate(best, out, target, info, train, val, test)
        _plot(best.predict(test), truth, out / "calibration.png", self.device_key, target)
        summary["out"] = str(out)
        (self.workdir / "report.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        return summary

    def auxiliary_samples(self) -> list[Sample]:
        """Other devices' rows for the operator trees (the request was refused at the start where operator trees
        would not learn from them)."""
        if not self.request.auxiliary:
            return []
        try:
            return other_device_samples(self.request.auxiliary, self.device_key, self.request.progress)
        except ValueError as exc:  # a dataset of this very device, say
            raise CalibrationError(str(exc)) from None

    def _shipped(self, samples: Sequence[Sample]) -> np.ndarray:
        assert self.shipped is not None
        return np.array([p.values[self.request.target] for p in self.shipped.predict_graphs([s.graph for s in samples])])


def _count(values) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return dict(sorted(counts.items()))


def _plot(predicted: np.ndarray, measured: np.ndarray, path: Path, device: str, target: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.loglog(measured, predicted, "o", ms=4, alpha=0.7)
    low, high = float(min(measured.min(), predicted.min())), float(max(measured.max(), predicted.max()))
    ax.plot([low, high], [low, high], "k--", lw=0.8)
    ax.set_xlabel(f"measured {target}")
    ax.set_ylabel(f"predicted {target}")
    ax.set_title(f"held-out rows on {device}"[:70], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@dataclass
class CalibrationResult:
    summary: dict
    counts: dict = field(default_factory=dict)
    pool: int = 0
    seconds: float = 0.0


def calibrate(request: CalibrationRequest) -> CalibrationResult:
    """Pool → measure → fit → score → save, within ``request.budget_minutes`` (the fit gets what is left)."""
    if not 1.0 <= request.budget_minutes <= 24 * 60:
        raise CalibrationError(f"--budget-minutes must be in 1..1440, got {request.budget_minutes:g}")
    if request.max_models and not MIN_ROWS <= request.max_models <= MAX_POOL:
        raise CalibrationError(f"--max-models must be 0 (no limit) or in {MIN_ROWS}..{MAX_POOL}, "
                               f"got {request.max_models}")
    started = time.monotonic()
    budget_s = request.budget_minutes * 60
    run = Calibration(request)
    measure_until = started + (1 - FIT_SHARE) * budget_s
    pool_limit = min(MAX_POOL, 4 * request.max_models) if request.max_models else MAX_POOL
    pool = run.grow_pool(started + SELECT_SHARE * budget_s, pool_limit)
    if not pool:
        raise CalibrationError("no candidate model could be exported; see the log")
    counts: dict[str, int] = {}
    while True:
        for status, n in run.measure(pool, measure_until, request.max_models).items():
            counts[status] = max(counts.get(status, 0), n) if status == "already" else counts.get(status, 0) + n
        left = measure_until - time.monotonic()
        if left < 10 or len(pool) >= pool_limit or (request.max_models and run.measured_count() >= request.max_models):
            break
        grown = run.grow_pool(time.monotonic() + 0.3 * left, pool_limit)  # measured all of it early: draw more
        if len(grown) == len(pool):
            break
        pool = grown
    remaining_min = max(0.5, (started + budget_s - time.monotonic()) / 60)
    summary = run.fit(remaining_min)
    return CalibrationResult(summary, counts, len(pool), time.monotonic() - started)


__all__ = ["CalibrationError", "CalibrationRequest", "CalibrationResult", "PoolEntry", "calibrate",
           "measurement_order"]

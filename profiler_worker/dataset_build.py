"""Local dataset builds: sample configs reproducibly, measure each, store, resume where stopped.

Config ``i`` of a build is drawn from its own seeded generator, so a build is
index-addressable: the plan (index → config) is appended to a JSONL file next
to the store as it grows, and a restarted build reads it back instead of
re-sampling (sampling with a FLOPs budget costs ~0.2 s a config).
"""
from __future__ import annotations

import contextlib
import json
import queue
import random
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

from seernet.spaces import SPACES, ModelConfig, get_space
from seernet.spaces.timm_space import ArchPatternError, matching_archs

from .job import ProfileJob
from .measure import export_isolated, measure_job
from .settings import ProfileSettings
from .store import DatasetStore

class BatchSizeError(ValueError):
    """A batch size the plan's spaces never draw."""


# timm, hf: real architectures (seernet.spaces.timm_space, hf_space); the shipped 5,048 rows predate them
# (their plan file is cached, so `make dataset` resumes with the plan it measured)
DEFAULT_SHARES = {"cnn": 0.20, "nasbench201": 0.15, "vit": 0.10, "bert": 0.05, "mlp": 0.10, "timm": 0.28, "hf": 0.12}


def parse_shares(space: str) -> dict[str, float]:
    """``all``, ``NAME`` or ``NAME=SHARE,NAME=SHARE…`` as {space: share}; a bad name or share raises ValueError."""
    if space == "all":
        return dict(DEFAULT_SHARES)
    shares: dict[str, float] = {}
    for part in space.split(","):
        name, _, share = part.strip().partition("=")
        get_space(name)  # names the known spaces when this one is not
        try:
            shares[name] = float(share) if share else 1.0
        except ValueError:
            raise ValueError(f"share of space {name!r} must be a number, got {share!r}") from None
        if not shares[name] > 0:
            raise ValueError(f"share of space {name!r} must be positive, got {share!r}")
    return shares


@dataclass
class BuildPlan:
    spaces: dict[str, float]
    n: int
    seed: int = 0
    max_gflops: float | None = 2.0
    timm_archs: tuple[str, ...] = ()  # globs: the timm space draws only training architectures matching them
    batch_sizes: tuple[int, ...] = ()  # drawn from these instead of each space's own batch sizes

    @classmethod
    def for_space(cls, space: str, n: int, seed: int = 0, max_gflops: float | None = 2.0,
                  timm_archs: tuple[str, ...] = (), batch_sizes: tuple[int, ...] = ()) -> "BuildPlan":
        """``space``: ``all`` (:data:`DEFAULT_SHARES`), one space, or weighted shares ``timm=0.6,hf=0.2,cnn=0.2``
        (a build aimed where the predictor is weakest); ``timm_archs`` narrows the timm space to the families
        matching those globs (``regnet*,*resnext*``); ``batch_sizes`` to the batches a search runs at (the
        spaces' own ranges still bound them: a batch a space never draws is refused, not silently replaced).
        Bad names or shares raise ValueError, bad globs its subclass ArchPatternError, bad batch sizes its
        subclass BatchSizeError."""
        shares = parse_shares(space)
        if timm_archs:
            if "timm" not in shares:
                raise ArchPatternError("timm architectures were named but the plan draws no timm models "
                                 "(add timm to --space)")
            matching_archs(timm_archs)
        for name in shares:
            allowed = get_space(name).batch_sizes
            wrong = [b for b in batch_sizes if b not in allowed]
            if wrong:
                raise BatchSizeError(f"the {name} space draws batch sizes {', '.join(map(str, allowed))}, "
                                     f"not {', '.join(map(str, wrong))}")
        return cls(shares, n, seed, max_gflops, tuple(timm_archs), tuple(batch_sizes))

    def config_at(self, index: int) -> ModelConfig:
        rng = random.Random(f"build:{self.seed}:{index}")
        names = sorted(self.spaces)
        space = get_space(rng.choices(names, weights=[self.spaces[s] for s in names])[0])
        batches = {"batch_sizes": self.batch_sizes} if self.batch_sizes else {}
        while True:
            config = space.sample(rng, archs=self.timm_archs, **batches) if self.timm_archs and space.name == "timm" \
                else space.sample(rng, **batches)
            if self.max_gflops is None or space.forward_flops(config) <= self.max_gflops * 1e9:
                return config


def iter_plan(plan: BuildPlan, plan_file: Path, shard: tuple[int, int] = (0, 1)) -> Iterator[tuple[int, ModelConfig]]:
    """Configs 0..n-1 (those with ``index % shards == shard``), read from ``plan_file`` where
    already sampled, appended to it otherwise."""
    cached: dict[int, ModelConfig] = {}
    if plan_file.exists():
        for line in plan_file.read_text().splitlines():
            if line.strip():
                entry = json.loads(line)
                cached[int(entry["index"])] = ModelConfig.from_dict(entry["config"])
    plan_file.parent.mkdir(parents=True, exist_ok=True)
    with plan_file.open("a") as out:
        for index in range(shard[0], plan.n, shard[1]):
            if index not in cached:
                cached[index] = plan.config_at(index)
                out.write(json.dumps({"index": index, "config": cached[index].to_dict()}) + "\n")
                out.flush()
            yield index, cached[index]


def _prefetch(plan: BuildPlan, plan_file: Path, shard: tuple[int, int], done: set[str], settings: ProfileSettings,
              prefetch_affinity: tuple[int, ...] | None, out: queue.Queue, stop: threading.Event,
              core: contextlib.AbstractContextManager) -> None:
    """Producer: sample the plan and export each new config, so the measuring core only measures.
    ``core`` is held while exporting: a lock shared with measurement when both use the same cores."""
    try:
        for _, config in iter_plan(plan, plan_file, shard):
            if stop.is_set():
                break
            job = ProfileJob.for_config(config, settings.device)
            exported = None
            if job.job_id not in done:
                with core:
                    outcome = export_isolated(config.to_json(), settings, prefetch_affinity)
                exported = outcome.result["onnx"] if outcome.ok else None
            out.put((job, exported))
    finally:
        out.put(None)


def shares_cores(measure: tuple[int, ...] | None, prefetch: tuple[int, ...] | None) -> bool:
    """Whether export could run on a core a measurement runs on (``None``: any core)."""
    return measure is None or prefetch is None or bool(set(measure) & set(prefetch))


def build_dataset(store: DatasetStore, plan: BuildPlan, settings: ProfileSettings, table: str = "measurements",
                  plan_file: Path | None = None, progress: bool = True, shard: tuple[int, int] = (0, 1),
                  prefetch_affinity: tuple[int, ...] | None = None) -> dict[str, int]:
    """Measure every planned config not yet in ``store``; returns counts by status.

    ``shard=(k, K)`` measures every K-th config starting at k, so K processes
    pinned to K cores can share one build (and one store) without overlap.
    Sampling and export run ahead in a producer thread (their children on
    ``prefetch_affinity``), overlapping with measurement only when that is a
    different set of cores: an export running on the measuring core doubles the
    measured times (a session-2 build did exactly that; its rows are quarantined).
    """
    plan_file = plan_file or store.path.with_suffix(f".s{plan.seed}.shard{shard[0]}of{shard[1]}.plan.jsonl")
    done = store.job_ids(table)
    counts = {"ok": 0, "partial": 0, "failed": 0, "skipped": 0}
    bar = tqdm(total=len(range(shard[0], plan.n, shard[1])), desc=f"measuring ({table})", unit="cfg",
               disable=not progress, mininterval=5)
    ready: queue.Queue = queue.Queue(maxsize=4)
    stop = threading.Event()
    core = threading.Lock() if shares_cores(settings.cpu_affinity, prefetch_affinity) else contextlib.nullcontext()
    producer = threading.Thread(target=_prefetch, args=(plan, plan_file, shard, set(done), settings, prefetch_affinity,
                                                        ready, stop, core), daemon=True)
    producer.start()
    try:
        while (item := ready.get()) is not None:
            job, exported = item
            if job.job_id in done:
                counts["skipped"] += 1
            else:
                with core:
                    result = measure_job(job, settings, exported=exported)
                store.add(result, table)
                done.add(job.job_id)
                counts[result.status] += 1
            bar.update(1)
            bar.set_postfix(counts, refresh=False)
    finally:
        stop.set()
        while producer.is_alive():  # unblock a producer waiting on a full queue
            try:
                ready.get_nowait()
            except queue.Empty:
                producer.join(timeout=0.1)
        bar.close()
    return counts


def remeasure_sample(store: DatasetStore, n: int, settings: ProfileSettings, seed: int = 0,
                     progress: bool = True) -> dict[str, int]:
    """Measure ``n`` random stored configs a second time into ``remeasurements`` (noise floor).

    Drawn among configs not re-measured yet, so every run adds ``n`` pairs; a
    stopped run resumes (what it measured is no longer a candidate).
    """
    done = store.job_ids("remeasurements")
    candidates = sorted((r for r in store.rows() if r["job_id"] not in done), key=lambda r: r["job_id"])
    picked = random.Random(seed).sample(candidates, min(n, len(candidates)))
    counts = {"ok": 0, "partial": 0, "failed": 0}
    for row in tqdm(picked, desc="re-measuring", unit="cfg", disable=not progress, mininterval=5):
        job = ProfileJob(config=ModelConfig.from_json(row["config_json"]), device=settings.device, job_id=row["job_id"])
        result = measure_job(job, settings)
        store.add(result, "remeasurements")
        counts[result.status] += 1
    return counts


def known_spaces() -> list[str]:
    return ["all", *sorted(SPACES)]

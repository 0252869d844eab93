"""The predictor repository on disk: versions, promotion, rollback, history, and the retrain decision.

Retrain → evaluate on a fixed holdout → promote only if not worse; roll back on demand.
It lives below the server (which only reads the serving versions, ``server.registry``)
and the worker (whose trigger launches ``perfseer retrain`` as a process).

Layout under the predictors root:
  ``<name>/``                      the serving version (the server hot-swaps when it changes)
  ``.staging/<name>-<ts>/``        a candidate being trained
  ``.history/<name>/<version>/``   every version that was replaced (``rollback`` restores one)
  ``.reports/<name>-<ts>.json``    what each retrain decided and why

Promotion is two renames on one filesystem, so the server never sees half a predictor.
"""
from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .data import Sample, in_holdout, random_split
from .nn import SeerNetConfig
from .predictor import Predictor, PredictorLoadError, mean_mape
from .train import TrainConfig
from .training_run import ManifestInfo, train_score_save

log = logging.getLogger(__name__)


@dataclass
class Decision:
    promoted: bool
    reason: str
    candidate_mape: float | None = None
    current_mape: float | None = None
    version: str | None = None
    candidate_guard_mape: float | None = None
    current_guard_mape: float | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def promote(root: Path, name: str, candidate_dir: Path) -> None:
    live = root / name
    if live.exists():
        old_version = json.loads((live / "manifest.json").read_text()).get("version", f"unknown-{time.time():.0f}")
        history = root / ".history" / name / old_version
        history.parent.mkdir(parents=True, exist_ok=True)
        if history.exists():
            shutil.rmtree(history)
        live.rename(history)
    candidate_dir.rename(live)


def rollback(root: Path, name: str, version: str) -> None:
    """Serve ``version`` again (from ``.history``); the replaced one goes to history in turn."""
    source = root / ".history" / name / version
    if not source.is_dir():
        available = sorted(p.name for p in (root / ".history" / name).glob("*")) if (root / ".history" / name).exists() else []
        raise FileNotFoundError(f"no version {version!r} of {name!r} in history; available: {available}")
    staging = root / ".staging" / f"{name}-rollback-{time.time():.0f}"
    staging.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, staging)
    promote(root, name, staging)


def retrain_and_maybe_promote(root: Path, name: str, samples: Sequence[Sample],
                              train: Callable[[list[Sample], Path], None], guard: Sequence[Sample] = ()) -> Decision:
    """Train a candidate on the non-holdout rows with ``train(samples, out_dir)``, compare, decide, report.

    ``guard``: measured models from outside the training spaces (see ``seernet.zoo.measured_zoo_samples``).
    The candidate must not be worse there either: a network can win on a random holdout while
    extrapolating worse (it happened: 5.2 vs 5.7 % on the holdout, 19 vs 9 % on real architectures).
    """
    holdout = [s for s in samples if in_holdout(s.key)]
    training = [s for s in samples if not in_holdout(s.key)]
    stamp = time.strftime("%Y%m%dT%H%M%S")
    candidate_dir = root / ".staging" / f"{name}-{stamp}"
    candidate_dir.parent.mkdir(parents=True, exist_ok=True)
    decision: Decision
    try:
        if not holdout:
            raise ValueError("the fixed holdout is empty: not enough rows to judge a candidate")
        train(training, candidate_dir)
        candidate = Predictor.load(candidate_dir)
        candidate_mape = mean_mape(candidate, holdout)
        candidate_guard = mean_mape(candidate, guard) if guard else None
        current, current_mape, current_guard = None, None, None
        if (root / name / "manifest.json").exists():
            try:
                current = Predictor.load(root / name)
            except PredictorLoadError as exc:
                log.warning("serving predictor unreadable (%s): any finite candidate wins", exc)
        if current is not None:
            current_mape = mean_mape(current, holdout)
            current_guard = mean_mape(current, guard) if guard else None
        scores = {"candidate_mape": candidate_mape, "current_mape": current_mape,
                  "candidate_guard_mape": candidate_guard, "current_guard_mape": current_guard}
        if not math.isfinite(candidate_mape) or (candidate_guard is not None and not math.isfinite(candidate_guard)):
            decision = Decision(False, "candidate predicts non-finite values", **scores)
        elif current_mape is not None and candidate_mape > current_mape:
            decision = Decision(False, f"candidate is worse on the holdout ({candidate_mape:.2f} % > "
                                       f"{current_mape:.2f} %)", **scores)
        elif current_guard is not None and candidate_guard > current_guard:
            decision = Decision(False, f"candidate is worse on the guard set of {len(guard)} real architectures "
                                       f"({candidate_guard:.2f} % > {current_guard:.2f} %)", **scores)
        else:
            promote(root, name, candidate_dir)
            decision = Decision(True, "not worse on the holdout" + (" nor on the guard set" if guard else ""),
                                version=candidate.version, **scores)
    except Exception as exc:  # a failed retrain must leave the serving version alone
        log.exception("retrain of %s failed", name)
        decision = Decision(False, f"retrain failed: {type(exc).__name__}: {exc}")
    if candidate_dir.exists():
        shutil.rmtree(candidate_dir, ignore_errors=True)
    reports = root / ".reports"
    reports.mkdir(parents=True, exist_ok=True)
    (reports / f"{name}-{stamp}.json").write_text(json.dumps({"name": name, "rows": len(samples), "holdout": len(holdout),
                                                               "guard": len(guard), **decision.to_dict()}, indent=2))
    log.info("retrain of %s: %s", name, decision.reason)
    return decision


def retrain(root: Path, name: str, samples: Sequence[Sample], net: SeerNetConfig, config: TrainConfig,
            device_key: str, guard: Sequence[Sample] = (), seed: int = 0, source: dict | None = None) -> Decision:
    """``perfseer retrain``: a candidate trained on the non-holdout rows (3:1 train/validation, scored on the
    fixed holdout as its test split), saved with the same manifest as any predictor, promoted only if not worse."""
    def train(rows: list[Sample], out: Path) -> None:
        train_rows, val_rows, _ = random_split(rows, seed, (3, 1, 0))
        holdout = [s for s in samples if in_holdout(s.key)]
        info = ManifestInfo(name, device_key, split={"kind": "3:1 + fixed holdout as test", "seed": seed},
                            source=source or {})
        train_score_save(train_rows, val_rows, holdout, net, config, out, info)

    return retrain_and_maybe_promote(root, name, samples, train, guard)

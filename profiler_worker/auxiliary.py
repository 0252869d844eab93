"""Other devices' profiled rows, as auxiliary training rows for operator trees (``fit`` and ``calibrate``).

Why: an operator's shape decides much of its cost on any CPU (which operators a runtime fuses, what odd
channel counts pay for padding, how attention scales); a device measured for ten minutes has seen a few
thousand operators, the shipped datasets hold hundreds of thousands.  ``seernet.operator_trees`` learns from
them beside the device's own rows, marked as another device's and at half weight.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from seernet.data import Sample, samples_from_rows

from .store import DatasetStore


def check_auxiliary_use(paths: Sequence[str | Path], target: str, methods: Sequence[str]) -> None:
    """Refuses (ValueError) other devices' datasets where no operator trees would learn from them, before any
    row is read: ``fit`` and ``calibrate`` share this rule, so neither loads rows it would then ignore."""
    if paths and (target != "infer_time_ms" or "operator_trees" not in methods):
        raise ValueError("--auxiliary-dataset teaches operator trees, which learn infer_time_ms only: "
                         "use it with --target infer_time_ms and operator_trees among the methods")


def other_device_samples(paths: Sequence[str | Path], device_key: str | None, progress: bool = True) -> list[Sample]:
    """The profiled inference rows of each dataset in ``paths``.  A dataset with rows of ``device_key`` (the
    device being fitted) is refused: its rows would enter as another device's."""
    samples: list[Sample] = []
    for path in paths:
        if not Path(path).is_file():
            raise ValueError(f"auxiliary dataset {path} is not a dataset file")
        store = DatasetStore(path)
        if device_key is not None and device_key in store.device_keys():
            raise ValueError(f"auxiliary dataset {path} holds rows of {device_key}, the device being fitted: "
                             "give it as that device's own rows (--dataset)")
        rows = [r for r in store.rows() if r.get("infer_time_ms")]
        kernels = store.operator_kernels({r["job_id"] for r in rows})
        samples += [s for s in samples_from_rows([r for r in rows if r["job_id"] in kernels], ("infer_time_ms",),
                                                 progress=progress, kernels=kernels) if s.operators is not None]
    return samples


__all__ = ["check_auxiliary_use", "other_device_samples"]

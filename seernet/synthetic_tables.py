"""Synthetic NAS-Bench-201 device tables: known, almost additive cost structures to check `fit` against.

Public tables of other devices (a GPU at batch 256, a phone, a Raspberry Pi) are
held out of this repository; these reproduce their structure: latency is a
sum of per-edge operation costs with a different cost vector per device
(including devices where pooling or skip connections dominate, and a flat one
whose whole table spans a small ratio), times a batch factor, with a few
interaction terms and 1–5 % multiplicative noise.  The device runs the network
eagerly (as PyTorch does, and as the public tables were measured): every
operation whose input is computed costs time, including operations whose
output is never used and identical pools of one input, which the ONNX export
removes or merges.  Operations whose input is unreachable (after a ``none``
edge) cost nothing: the network skips them.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from .spaces.nasbench201 import executed_ops, is_connected

DEVICES: dict[str, dict[str, float]] = {
    "conv_heavy": {"skip_connect": 0.02, "nor_conv_1x1": 0.35, "nor_conv_3x3": 1.0, "avg_pool_3x3": 0.12},
    "pool_heavy": {"skip_connect": 0.05, "nor_conv_1x1": 0.25, "nor_conv_3x3": 0.45, "avg_pool_3x3": 1.1},
    "skip_heavy": {"skip_connect": 0.55, "nor_conv_1x1": 0.2, "nor_conv_3x3": 0.4, "avg_pool_3x3": 0.3},
    "flat": {"skip_connect": 0.30, "nor_conv_1x1": 0.38, "nor_conv_3x3": 0.46, "avg_pool_3x3": 0.34},
}
BASE_MS = {"conv_heavy": 1.5, "pool_heavy": 1.0, "skip_heavy": 0.8, "flat": 6.0}


@dataclass(frozen=True)
class SyntheticRow:
    arch_str: str
    latency_ms: float


def latency(arch_str: str, device: str, batch_size: int = 1, noise: float = 0.03, rng: random.Random | None = None
            ) -> float:
    costs = DEVICES[device]
    ops = executed_ops(arch_str)
    cell = sum(costs[op] for op in ops)
    convs = sum(op.startswith("nor_conv") for op in ops)
    pools = ops.count("avg_pool_3x3")
    cell += 0.04 * convs * pools + 0.02 * max(0, len(ops) - 4)  # interactions: mixed cells and long cells
    value = (BASE_MS[device] + 15 * cell) * batch_size ** 0.9
    if rng is not None and noise > 0:
        value *= 1.0 + rng.gauss(0.0, noise)
    return max(value, 1e-3)


def synthetic_table(device: str, n: int, seed: int = 0, noise: float = 0.03, batch_size: int = 1
                    ) -> list[SyntheticRow]:
    """``n`` distinct connected cells with their synthetic latency on ``device``, reproducible from ``seed``.
    The cells depend on ``seed`` only, so every device's table covers the same cells."""
    from .spaces.nasbench201 import all_arch_strs

    cells = [a for a in all_arch_strs() if is_connected(a)]
    random.Random(f"synthetic-cells:{seed}").shuffle(cells)
    rng = random.Random(f"synthetic-noise:{device}:{seed}")
    return [SyntheticRow(a, latency(a, device, batch_size, noise, rng)) for a in cells[:n]]

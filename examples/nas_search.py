"""Evolutionary search over NAS-Bench-201 under a latency budget, with PerfSeer as the latency oracle.

The objective is a stand-in (we ship no accuracy table): a capacity proxy that rewards 3x3 and 1x1
convolutions and penalises cells whose output skips all computation.  What matters here is the loop:
thousands of candidates are checked against the latency budget by the service, never by a device.

    perfseer serve &                     # or make serve
    python examples/nas_search.py --budget-ms 5 --generations 20
"""
from __future__ import annotations

import argparse
import random

from perfseer_client import PerfSeerClient

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


def arch_str(ops: list[str]) -> str:
    a, b, c, d, e, f = ops
    return f"|{a}~0|+|{b}~0|{c}~1|+|{d}~0|{e}~1|{f}~2|"


def connected(ops: list[str]) -> bool:
    reach = {0}
    for (to, frm), op in zip(EDGES, ops):
        if op != "none" and frm in reach:
            reach.add(to)
    return 3 in reach


def proxy_score(ops: list[str]) -> float:
    weights = {"nor_conv_3x3": 3.0, "nor_conv_1x1": 1.5, "avg_pool_3x3": 0.3, "skip_connect": 0.2, "none": 0.0}
    return sum(weights[o] for o in ops) - (2.0 if not connected(ops) else 0.0)


def mutate(ops: list[str], rng: random.Random) -> list[str]:
    child = list(ops)
    child[rng.randrange(6)] = rng.choice(OPS)
    return child


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:50051")
    parser.add_argument("--budget-ms", type=float, default=5.0, help="predicted inference time budget")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--population", type=int, default=64)
    parser.add_argument("--generations", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    try:
        from tqdm import trange
    except ImportError:
        trange = range

    with PerfSeerClient(args.server, timeout_s=600) as client:  # new architectures are exported once, server-side
        def latencies(population: list[list[str]]) -> list[float]:
            models = [{"space": "nasbench201", "arch": {"arch_str": arch_str(o)}, "input_size": 32} for o in population]
            results = client.predict_many(models, batch_size=args.batch_size, metrics=["infer_time_ms"])
            return [r["infer_time_ms"] if not isinstance(r, Exception) else float("inf") for r in results]

        population = [[rng.choice(OPS) for _ in range(6)] for _ in range(args.population)]
        best, evaluated = None, 0
        for _ in trange(args.generations, desc="generations"):
            lat = latencies(population)
            evaluated += len(population)
            feasible = [(proxy_score(o), o, t) for o, t in zip(population, lat) if t <= args.budget_ms]
            feasible.sort(key=lambda x: -x[0])
            if feasible and (best is None or feasible[0][0] > best[0]):
                best = feasible[0]
            parents = [o for _, o, _ in feasible[: max(2, len(feasible) // 4)]] or population[:2]
            population = [mutate(rng.choice(parents), rng) for _ in range(args.population)]
    if best is None:
        print(f"no candidate met the {args.budget_ms} ms budget among {evaluated} evaluated")
    else:
        print(f"best under {args.budget_ms} ms: {arch_str(best[1])}  predicted {best[2]:.3f} ms  "
              f"(proxy score {best[0]:.1f}; {evaluated} candidates evaluated by prediction)")


if __name__ == "__main__":
    main()

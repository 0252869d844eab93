"""Real architectures none of our spaces produced (torchvision/timm layer-for-layer re-implementations:
ResNet-18/50/152, MobileNetV2, VGG-11, ViT-Tiny, BERT-mini): measured on this machine, then predicted.

Issue 4: "a model from torchvision or timm that none of our spaces produced must still be ranked right".
These models are also *bigger* than anything in the dataset (its configs stop at 2 GFLOPs; ResNet-152 is
23 GFLOPs at batch 1), so this is an extrapolation test as well.  Inference only: the profiler measures
ONNX models with onnxruntime; training time needs the model's space config.

Measurements are kept in ``bench/results/zoo_measured.json`` (taken once, reused when only the predictor
changed; ``--remeasure`` takes them again).  Run: ``perfseer bench zoo [--cpu 1] [--batch-sizes 1 4]``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.common import RESULTS, save  # noqa: E402
from profiler_worker.job import ProfileJob  # noqa: E402
from profiler_worker.measure import measure_job  # noqa: E402
from profiler_worker.settings import ProfileSettings  # noqa: E402
from seernet.predictor import Predictor  # noqa: E402
from seernet.scores import score  # noqa: E402
from seernet.zoo import ZOO, zoo_onnx, zoo_samples  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MEASURED = RESULTS / "zoo_measured.json"
METRICS = ("infer_time_ms", "infer_mem_mb")


def measure(batch_sizes: list[int], cpu: int, time_cap: float, remeasure: bool, path: Path = MEASURED) -> list[dict]:
    """Each zoo model at each batch size, measured like the dataset (one pinned thread, same time cap), kept in
    ``path`` (resumed from it unless ``remeasure``)."""
    known = json.loads(path.read_text())["rows"] if path.exists() and not remeasure else []
    done = {(r["model"], r["batch_size"]) for r in known}
    settings = ProfileSettings(cpu_affinity=(cpu,), time_cap_s=time_cap, modes=("infer",))
    for name in ZOO:
        for batch in batch_sizes:
            if (name, batch) in done:
                continue
            result = measure_job(ProfileJob(onnx_bytes=zoo_onnx(name), batch_size=batch, family="zoo"), settings)
            row = {"model": name, "batch_size": batch, "status": result.status, "reason": result.reason,
                   "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(result.measured_at)),
                   **{m: result.metrics.get(m) for m in METRICS}}
            print(json.dumps(row), flush=True)
            known.append(row)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"settings": settings.describe(), "rows": known}, indent=2) + "\n")
    return known


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictor", default=str(ROOT / "predictors" / "cpu"))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--cpu", type=int, default=sorted(os.sched_getaffinity(0))[-1],
                        help="core the measurements are pinned to (default: the last allowed)")
    parser.add_argument("--time-cap", type=float, default=0.5, help="seconds per timed loop (the dataset's: 0.5)")
    parser.add_argument("--remeasure", action="store_true")
    args = parser.parse_args(argv)

    rows = [r for r in measure(args.batch_sizes, args.cpu, args.time_cap, args.remeasure) if r["status"] == "ok"]
    predictor = Predictor.load(args.predictor)
    graphs = [s.graph for s in zoo_samples(rows)]
    predictions = predictor.predict_graphs(graphs)
    for row, graph, prediction in zip(rows, graphs, predictions):
        row["gflops"] = graph.global_value("flops_sum") / 1e9
        row["predicted"] = {m: prediction.values[m] for m in METRICS}
    scores = {m: score(np.array([r["predicted"][m] for r in rows]), np.array([r[m] for r in rows]))
              for m in METRICS}
    for row in rows:
        print(f"{row['model']:>22} b{row['batch_size']:<3} {row['gflops']:7.1f} GFLOPs  "
              + "  ".join(f"{m} {row[m]:9.2f} → {row['predicted'][m]:9.2f}" for m in METRICS))
    for m, s in scores.items():
        print(f"{m}: Spearman {s['spearman']:.3f}  Kendall {s['kendall']:.3f}  MAPE {s['mape']:.1f} %")
    path = save("zoo", {"predictor": predictor.version, "rows": rows, "scores": scores,
                        "note": "inference only; every model is outside the training spaces and above their "
                                "2-GFLOP cap"})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

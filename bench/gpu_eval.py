"""`perfseer bench gpu`: the GPU cost model, leave-one-GPU-out, on NeuSight's public measurements.

For each training chip in turn (the A100 40 GB and 80 GB boards together): fit on the others, then predict
its kernels (per family) and its whole models — from the traced BERT / GPT / OPT / Switch runs composed as
NeuSight does, and from our own ONNX export of each config — beside a roofline model and a Habitat-style
scaling from the nearest training GPU (its measured time × the ratio of the two GPUs' roofline bounds); and
the ONNX prediction calibrated by one measured run of that GPU.  ``--ship DIR`` then fits on every GPU and
writes the shipped predictor.

    python -m bench.gpu_eval --ship predictors/gpu    # → bench/results/gpu_eval.json, gpu_eval.png
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, save  # noqa: E402
from seernet.gpu.cost_model import fit_cost_model  # noqa: E402
from seernet.gpu.kernels import FAMILIES, load_measurements  # noqa: E402
from seernet.gpu.hf_workloads import predict_hf  # noqa: E402
from seernet.gpu.predictor import DEFAULT_BACKWARD, GpuPredictor  # noqa: E402
from seernet.gpu.specs import load_spec_dir  # noqa: E402
from seernet.gpu.workloads import load_traced  # noqa: E402
from seernet.predictor import manifest_version  # noqa: E402
from seernet.settings import shared_data_dir  # noqa: E402


def mape(p, y) -> float:
    p, y = np.asarray(p, float), np.asarray(y, float)
    return float(100 * np.mean(np.abs(p - y) / y)) if len(y) else math.nan


def nearest(gpu, others):
    """The training GPU most like ``gpu`` in FP32 rate and bandwidth (log distance)."""
    return min(others, key=lambda o: abs(math.log(o.fp32_gflops / gpu.fp32_gflops))
               + abs(math.log(o.bandwidth_gbs / gpu.bandwidth_gbs)))


def backward_factors(workloads) -> dict[str, float]:
    """Backward time as a multiple of forward time per kernel family, from traced training runs."""
    fw, bw = defaultdict(float), defaultdict(float)
    for w in workloads:
        if w.mode != "train":
            continue
        for op in w.ops:
            if op.kernel is not None:
                fw[op.kernel.family] += op.fw_ms
                bw[op.kernel.family] += op.bw_ms
    return {f: bw[f] / fw[f] for f in fw if fw[f] > 0}


def predict_workload(model, w, gpu, backward) -> float:
    ops = [op for op in w.ops if op.kernel is not None]
    times = np.zeros(len(w.ops))
    if ops:
        predicted = model.predict_ms([op.kernel for op in ops], gpu)
        index = [i for i, op in enumerate(w.ops) if op.kernel is not None]
        factor = np.array([1.0 + (backward.get(op.kernel.family, DEFAULT_BACKWARD) if w.mode == "train" else 0.0)
                           for op in ops])
        times[index] = predicted * factor
    return w.compose(times)


def predict_from_onnx(predictor, w, gpu) -> float | None:
    """The same workload predicted from our own ONNX export of its Hugging Face config (None: not exportable)."""
    path = shared_data_dir() / "neusight" / "model_configs" / f"{w.model}.json"
    if w.model.startswith("switch") or not path.exists():
        return None  # Switch Transformer is an encoder-decoder: its run needs decoder inputs we do not model
    return predict_hf(predictor, path, gpu, w.batch, w.seq, w.mode)


def roofline_workload(w, gpu, backward) -> float:
    times = np.array([op.kernel.roofline_ms(gpu) * (1.0 + (backward.get(op.kernel.family, DEFAULT_BACKWARD)
                                                           if w.mode == "train" else 0.0))
                      if op.kernel is not None else 0.0 for op in w.ops])
    return w.compose(times)


def calibrated(models: list[dict], key: str) -> list[float | None]:
    """Each run's prediction scaled by one other measured run of the same GPU (its smallest inference run, or
    the next smallest for itself; a GPU with training runs only, its smallest of those): what a user gets
    after timing one model on the GPU (``perfseer fit --gpu-spec``)."""
    usable = sorted((m for m in models if m.get(key)), key=lambda m: (m["mode"] != "inf", m["measured_ms"]))
    out = []
    for m in models:
        anchor = next((a for a in usable if a is not m), None)
        out.append(m[key] * anchor["measured_ms"] / anchor[key] if anchor is not None and m.get(key) else None)
    return out


def _summary(models: list[dict]) -> dict:
    def score(key: str, sel: list[dict]) -> float:
        kept = [m for m in sel if m.get(key)]
        return mape([m[key] for m in kept], [m["measured_ms"] for m in kept])

    keys = ("ours_ms", "ours_onnx_ms", "ours_onnx_calibrated_ms", "roofline_ms", "habitat_style_ms")
    return {mode: {"n": len(sel), **{k.removesuffix("_ms"): score(k, sel) for k in keys}}
            for mode in ("inf", "train") for sel in [[m for m in models if m["mode"] == mode]] if sel}


def run(max_iter: int) -> dict:
    """Leave one chip out (the A100 40 GB and 80 GB boards together): fit on the others, score its kernels and
    whole models."""
    root = shared_data_dir() / "neusight"
    specs = load_spec_dir(root / "device_configs")
    by_key = {s.key: s for s in specs.values()}
    measurements = load_measurements(root)
    workloads = load_traced(root)
    chips = sorted({by_key[m.gpu].chip for m in measurements})
    report = {"source": "NeuSight public measurements (Lee et al., ASPLOS'25; MIT licence), ../shared/data/neusight",
              "held_out": "one chip at a time (A100 40 GB and 80 GB boards together)",
              "kernels": {}, "models": {}, "max_iter": max_iter, "points": []}
    for chip in chips:
        train = [m for m in measurements if by_key[m.gpu].chip != chip]
        model = fit_cost_model(train, specs, max_iter=max_iter)
        backward = backward_factors([w for w in workloads if by_key[w.gpu].chip != chip])
        predictor = GpuPredictor(model, specs, backward, {})
        others = [by_key[g] for g in sorted({m.gpu for m in train})]
        for held in sorted({m.gpu for m in measurements if by_key[m.gpu].chip == chip}):
            gpu = by_key[held]
            near = nearest(gpu, others)
            near_lat = {(m.kernel.op, m.kernel.dims): m.latency_ms for m in train if m.gpu == near.key}
            table = {}
            for family in FAMILIES:
                rows = [m for m in measurements if m.gpu == held and m.kernel.family == family]
                if not rows:
                    continue
                y = [m.latency_ms for m in rows]
                ours = model.predict_ms([m.kernel for m in rows], gpu)
                roof = [m.kernel.roofline_ms(gpu) for m in rows]
                hab = [(near_lat.get((m.kernel.op, m.kernel.dims)), m) for m in rows]
                hab_p = [lat * m.kernel.roofline_ms(gpu) / m.kernel.roofline_ms(near) for lat, m in hab if lat]
                hab_y = [m.latency_ms for lat, m in hab if lat]
                table[family] = {"n": len(rows), "ours": mape(ours, y), "roofline": mape(roof, y),
                                 "habitat_style": mape(hab_p, hab_y), "habitat_from": near.name}
            report["kernels"][gpu.name] = table
            models = []
            for w in (w for w in workloads if w.gpu == held):
                same = [v for v in workloads if v.gpu == near.key and (v.model, v.mode) == (w.model, w.mode)
                        and len(v.ops) == len(w.ops) and abs(math.log(v.e2e_ms / w.e2e_ms)) < 5]
                habitat = None
                if same:
                    v = min(same, key=lambda v: abs(roofline_workload(v, near, backward)
                                                    - roofline_workload(w, near, backward)))
                    habitat = v.e2e_ms * roofline_workload(w, gpu, backward) / roofline_workload(v, near, backward)
                models.append({"model": w.model, "mode": w.mode, "seq": w.seq, "batch": w.batch,
                               "measured_ms": w.e2e_ms, "ours_ms": predict_workload(model, w, gpu, backward),
                               "ours_onnx_ms": predict_from_onnx(predictor, w, gpu),
                               "roofline_ms": roofline_workload(w, gpu, backward), "habitat_style_ms": habitat})
            for m, value in zip(models, calibrated(models, "ours_onnx_ms")):
                m["ours_onnx_calibrated_ms"] = value
            report["points"].extend({"gpu": gpu.name, **m} for m in models)
            if models:
                report["models"][gpu.name] = _summary(models)
            print(gpu.name, {f: round(t["ours"], 1) for f, t in table.items()}, report["models"].get(gpu.name),
                  flush=True)
    report["mean"] = {key: mape([p[key] for p in report["points"] if p.get(key)],
                                [p["measured_ms"] for p in report["points"] if p.get(key)])
                      for key in ("ours_ms", "ours_onnx_ms", "ours_onnx_calibrated_ms", "roofline_ms",
                                  "habitat_style_ms")}
    return report


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 6))
    for key, marker in (("ours_onnx_ms", "o"), ("ours_onnx_calibrated_ms", "s"), ("ours_ms", "+"),
                        ("roofline_ms", "x")):
        points = [p for p in report["points"] if p.get(key)]
        ax.scatter([p["measured_ms"] for p in points], [p[key] for p in points], marker=marker,
                   label=key.removesuffix("_ms"), alpha=0.7)
    lo = min(p["measured_ms"] for p in report["points"]) / 2
    hi = max(p["measured_ms"] for p in report["points"]) * 2
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="measured whole-model latency (ms)", ylabel="predicted (ms)",
           title="Leave-one-GPU-out, NeuSight workloads")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def ship(directory: Path, max_iter: int) -> None:
    root = shared_data_dir() / "neusight"
    specs = load_spec_dir(root / "device_configs")
    model = fit_cost_model(load_measurements(root), specs, max_iter=max_iter)
    backward = backward_factors(load_traced(root))
    extra = {"name": directory.name, "metrics": ["infer_time_ms", "train_time_ms"], "backward": backward,
             "gpus": {n: s.to_dict() for n, s in specs.items()}, "max_iter": max_iter,
             "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "source": "NeuSight public kernel measurements (MIT licence)"}
    model.save(directory, extra=extra)
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["version"] = manifest_version(manifest, [directory / "kernels.safetensors"])
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"wrote {directory} (version {manifest['version']})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-iter", type=int, default=300)
    parser.add_argument("--ship", help="then fit on every GPU and write the predictor here")
    args = parser.parse_args(argv)
    report = run(args.max_iter)
    report["command"] = "perfseer bench gpu " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"wrote {save('gpu_eval', report)}")
    plot(report, RESULTS / "gpu_eval.png")
    if args.ship:
        ship(Path(args.ship), args.max_iter)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Evaluation JSON → markdown tables and PNG plots a person can read at a glance."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

COLUMNS = ("mape", "rmspe", "acc5", "acc10", "spearman", "kendall")


def _fmt(value: float | None, column: str) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if column in ("spearman", "kendall") else f"{value:.2f}"


def load_results(directory: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob("evaluation-*.json"))]


def write_report(directory: Path, command: str = "", noise_floor: dict | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = load_results(directory)
    lines = ["# Evaluation", "", f"Command: `{command}`" if command else "", ""]
    if noise_floor:
        lines += ["Noise floor (median relative difference between two measurements of the same config): " +
                  ", ".join(f"{m} {v['median_pct']:.2f} %" for m, v in noise_floor.get("metrics", {}).items()), ""]
    for result in results:
        lines += [f"## {result['split']}", "",
                  f"rows: train {result['rows']['train']}, validation {result['rows']['validation']}, "
                  f"test {result['rows']['test']}", ""]
        metrics = sorted({m for r in result["methods"].values() for m in r["scores"]})
        for metric in metrics:
            lines += [f"**{metric}**", "", "| method | " + " | ".join(COLUMNS) + " | fit s |",
                      "|---|" + "---|" * (len(COLUMNS) + 1)]
            for method, r in result["methods"].items():
                s = r["scores"].get(metric, {})
                lines.append(f"| {method} | " + " | ".join(_fmt(s.get(c), c) for c in COLUMNS) +
                             f" | {r['fit_seconds']:.0f} |")
            lines.append("")
    summary = _summary_table(results) + _operator_table(results) + _noise_table(results, noise_floor)
    lines[4:4] = summary
    (directory / "README.md").write_text("\n".join(lines) + "\n")
    _plot_scatter(results, directory, plt)
    _plot_mape(results, directory, plt)
    return directory / "README.md"


def _summary_table(results: list[dict]) -> list[str]:
    """Mean MAPE over metrics per method and split: the one table to read first."""
    methods = sorted({m for r in results for m in r["methods"]})
    lines = ["## Summary: mean MAPE (%) over metrics", "", "| split | " + " | ".join(methods) + " |",
             "|---|" + "---|" * len(methods)]
    for result in results:
        cells = []
        for method in methods:
            scores = result["methods"].get(method, {}).get("scores", {})
            mapes = [s["mape"] for s in scores.values() if "mape" in s]
            cells.append(f"{np.mean(mapes):.2f}" if mapes else "–")
        lines.append(f"| {result['split']} | " + " | ".join(cells) + " |")
    return lines + [""]


def _operator_table(results: list[dict]) -> list[str]:
    """Where the time goes: predicted vs measured kernel times on the profiled test rows
    (``seernet.operator_scores``), per split and method; empty when no method was scored so."""
    rows = [(r["split"], method, m["operators"]) for r in results for method, m in r["methods"].items()
            if m.get("operators")]
    if not rows:
        return []
    lines = ["## Per-operator: predicted vs measured kernel times (inference, profiled test rows)", "",
             "| split | method | models | kernels | time-weighted MAPE % | median APE % | within-model Spearman |",
             "|---|---|---|---|---|---|---|"]
    for split, method, o in rows:
        rho = f"{o['within_model_spearman']:.3f}" if o.get("within_model_spearman") is not None else "–"
        lines.append(f"| {split} | {method} | {o['models']} | {o['kernels']} | {o['weighted_mape']:.1f} | "
                     f"{o['median_ape']:.1f} | {rho} |")
    return lines + [""]


def _noise_table(results: list[dict], noise_floor: dict | None, method: str = "seernet_multi") -> list[str]:
    """The random split beside the labels' own noise: median and mean relative error vs the median
    relative difference between two measurements of the same config."""
    random_split = next((r for r in results if r["split"] == "random"), None)
    if not noise_floor or random_split is None or method not in random_split["predictions"]:
        return []
    lines = [f"## Random split vs the noise floor ({method})", "",
             "| metric | noise floor, median % | median APE % | MAPE % | MAPE / noise floor |", "|---|---|---|---|---|"]
    for metric, predicted in random_split["predictions"][method].items():
        floor = noise_floor.get("metrics", {}).get(metric, {}).get("median_pct")
        p, t = np.array(predicted, dtype=float), np.array(random_split["truth"][metric], dtype=float)
        keep = np.isfinite(p) & np.isfinite(t) & (t > 0)
        if floor is None or not keep.any():
            continue
        ape = 100 * np.abs(p[keep] - t[keep]) / t[keep]
        lines.append(f"| {metric} | {floor:.2f} | {np.median(ape):.2f} | {ape.mean():.2f} | {ape.mean() / floor:.1f}× |")
    return lines + [""]


def _plot_scatter(results: list[dict], directory: Path, plt) -> None:
    for result in results:
        if result["split"] != "random":
            continue
        for method in ("seernet", "seernet_multi"):
            if method not in result["predictions"]:
                continue
            metrics = list(result["predictions"][method])
            fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 4))
            for ax, metric in zip(np.atleast_1d(axes), metrics):
                p, t = np.array(result["predictions"][method][metric]), np.array(result["truth"][metric])
                keep = np.isfinite(p) & np.isfinite(t) & (t > 0)
                families = np.array(result["test_families"])[keep]
                for family in sorted(set(families)):
                    mask = families == family
                    ax.scatter(t[keep][mask], p[keep][mask], s=6, alpha=0.6, label=family)
                lo, hi = t[keep].min(), t[keep].max()
                ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.set_xlabel(f"measured {metric}")
                ax.set_ylabel("predicted")
                s = result["methods"][method]["scores"][metric]
                ax.set_title(f"{metric}: MAPE {s['mape']:.1f} %, ρ {s.get('spearman', float('nan')):.3f}", fontsize=9)
            np.atleast_1d(axes)[0].legend(fontsize=7, markerscale=2)
            fig.suptitle(f"{method}, random 2:1:1 split (test set)")
            fig.tight_layout()
            fig.savefig(directory / f"scatter-{method}.png", dpi=110)
            plt.close(fig)


def _plot_mape(results: list[dict], directory: Path, plt) -> None:
    methods = sorted({m for r in results for m in r["methods"]})
    splits = [r["split"] for r in results]
    if not splits:
        return
    values = np.array([[np.mean([s["mape"] for s in r["methods"].get(m, {}).get("scores", {}).values() if "mape" in s]
                                or [np.nan]) for m in methods] for r in results])
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(splits)), 4))
    width = 0.8 / len(methods)
    for k, method in enumerate(methods):
        ax.bar(np.arange(len(splits)) + k * width, values[:, k], width, label=method)
    ax.set_xticks(np.arange(len(splits)) + 0.4 - width / 2)
    ax.set_xticklabels(splits, rotation=20, fontsize=8)
    ax.set_ylabel("mean MAPE over metrics (%)")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(directory / "mape-by-split.png", dpi=110)
    plt.close(fig)

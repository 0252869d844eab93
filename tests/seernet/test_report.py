"""The evaluation report: summary, the noise-floor comparison, per-metric tables and plots."""
from __future__ import annotations

import json

import numpy as np

from seernet.report import write_report
from seernet.scores import score


def _result(split: str, truth: list[float], predicted: dict[str, list[float]]) -> dict:
    t = np.array(truth)
    return {"split": split, "rows": {"train": 8, "validation": 4, "test": len(truth)},
            "methods": {m: {"fit_seconds": 1.0, "scores": {"infer_time_ms": score(np.array(p), t)}}
                        for m, p in predicted.items()},
            "predictions": {m: {"infer_time_ms": p} for m, p in predicted.items()},
            "truth": {"infer_time_ms": truth}, "test_families": ["cnn", "mlp", "cnn", "mlp"]}


def test_report_tables_noise_ratio_and_plots(tmp_path):
    truth = [1.0, 2.0, 4.0, 8.0]
    (tmp_path / "evaluation-random.json").write_text(json.dumps(_result(
        "random", truth, {"seernet_multi": [1.1, 2.2, 4.4, 8.8], "loglinear": [2.0, 4.0, 8.0, 16.0]})))
    (tmp_path / "evaluation-lofo-mlp.json").write_text(json.dumps(_result(
        "lofo-mlp", truth, {"seernet_multi": [0.9, 1.8, 3.6, 7.2]})))
    noise = {"metrics": {"infer_time_ms": {"median_pct": 5.0}}}
    text = write_report(tmp_path, command="perfseer evaluate", noise_floor=noise).read_text()
    assert "| random | 100.00 | 10.00 |" in text  # loglinear 100 %, SeerNet-Multi 10 % mean MAPE
    assert "| lofo-mlp | – | 10.00 |" in text
    assert "| infer_time_ms | 5.00 | 10.00 | 10.00 | 2.0× |" in text  # 10 % error over a 5 % noise floor
    assert (tmp_path / "scatter-seernet_multi.png").stat().st_size > 0
    assert (tmp_path / "mape-by-split.png").stat().st_size > 0

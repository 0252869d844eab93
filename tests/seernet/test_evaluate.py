"""The evaluation's save step: the shipped predictor is replaced only if the new one is not worse on the guard set."""
from __future__ import annotations

from dataclasses import replace

from seernet.evaluate import EvalConfig, run_evaluation
from seernet.predictor import Predictor
from seernet.train import TrainConfig
from tests.server.fixtures import METRICS, tiny_samples


def _config(tmp_path, seed: int, guard=()) -> EvalConfig:
    return EvalConfig(metrics=METRICS, out=tmp_path / "evaluation", methods=("seernet_multi",), hidden=8, layers=1,
                      train=TrainConfig(epochs=2, progress=False, batch_size=8, seed=seed),
                      save_multi_to=tmp_path / "cpu", guard=guard)


def test_a_new_predictor_worse_on_the_guard_set_is_staged_not_saved(tmp_path):
    samples = tiny_samples(4)
    run_evaluation(samples, ["random"], _config(tmp_path, seed=0))
    saved = Predictor.load(tmp_path / "cpu")
    # a guard set the saved predictor predicts exactly: any different network is worse there
    guard = [replace(s, key=f"guard-{k}", targets=p.values)
             for k, (s, p) in enumerate(zip(samples[:4], saved.predict_graphs([s.graph for s in samples[:4]])))]
    run_evaluation(samples, ["random"], _config(tmp_path, seed=5, guard=guard))
    assert Predictor.load(tmp_path / "cpu").version == saved.version
    staged = Predictor.load(tmp_path / ".staging" / "cpu-evaluate")
    assert staged.version != saved.version
    run_evaluation(samples, ["random"], _config(tmp_path, seed=5))  # without a guard it is saved
    assert Predictor.load(tmp_path / "cpu").version not in (saved.version, staged.version)  # new creation time


def test_evaluate_cli_names_a_missing_guard_file(tmp_path, capsys):
    from perfseer.cli import main

    missing = tmp_path / "zoo_measured.json"
    assert main(["evaluate", "--splits", "random", "--guard", str(missing), "--out", str(tmp_path)]) == 2
    assert f"guard set {missing}" in capsys.readouterr().err

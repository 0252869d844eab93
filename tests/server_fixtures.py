from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from perfseer.config import Limits, Settings
from server.app import build_server
from tests.server.fixtures import train_tiny_predictor


@pytest.fixture(scope="session")
def trained_predictor(tmp_path_factory) -> Path:
    return train_tiny_predictor(tmp_path_factory.mktemp("predictor") / "cpu")


@pytest.fixture(scope="session")
def second_version(tmp_path_factory) -> Path:
    return train_tiny_predictor(tmp_path_factory.mktemp("predictor2") / "cpu", seed=5)


def make_settings(predictors: Path, redis_url: str = "", **limits) -> Settings:
    settings = Settings()
    settings.host, settings.port, settings.redis_url, settings.predictors = "127.0.0.1", 0, redis_url, predictors
    settings.limits = Limits(**{"max_model_bytes": 8 * 2**20, "max_request_bytes": 16 * 2**20, "max_nodes": 5000,
                                "max_batch_size": 1024, "max_batch_items": 64, **limits})
    return settings


@pytest.fixture()
def predictors_dir(tmp_path, trained_predictor) -> Path:
    root = tmp_path / "predictors"
    shutil.copytree(trained_predictor, root / "cpu")
    return root


@pytest.fixture()
def server(predictors_dir):
    running = build_server(make_settings(predictors_dir), watch_interval_s=0.2, max_workers=8)
    yield running
    running.stop(0.5)

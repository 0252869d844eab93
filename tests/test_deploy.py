"""Deployment, as far as it can be tested without a Docker engine: the compose file validates, the
images run the same CLI commands the tests run, and the CUDA worker's requirements resolve."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
import yaml

from perfseer.cli import build_parser
from tests.conftest import ROOT

DOCKER = ROOT / "docker"


def compose_command() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_compose_file_validates():
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor docker-compose is installed (make test installs docker-compose)")
    env = {**os.environ, "REDIS_PASSWORD": "test-password"}
    result = subprocess.run([*command, "-f", str(DOCKER / "compose.yaml"), "config"], capture_output=True, text=True,
                            env=env, cwd=DOCKER)
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    services = rendered["services"]
    assert set(services) == {"redis", "server", "worker", "trainer"}
    assert services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert "--appendonly" in services["redis"]["command"] and "--requirepass" in services["redis"]["command"]
    assert all("healthcheck" in services[s] or s in ("worker", "trainer", "server") for s in services)
    unset = subprocess.run([*command, "-f", str(DOCKER / "compose.yaml"), "config"], capture_output=True, text=True,
                           env={k: v for k, v in os.environ.items() if k != "REDIS_PASSWORD"}, cwd=DOCKER)
    assert unset.returncode != 0 and "REDIS_PASSWORD" in (unset.stderr + unset.stdout)


def dockerfile_command(name: str) -> list[str]:
    text = (DOCKER / name).read_text()
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M).group(1))
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))
    return entry + cmd


def test_image_entrypoints_are_the_tested_cli_commands():
    parser = build_parser()
    expected = {"server.Dockerfile": "serve", "worker-cuda.Dockerfile": "worker", "trainer.Dockerfile": "worker"}
    for dockerfile, subcommand in expected.items():
        argv = dockerfile_command(dockerfile)
        assert argv[0] == "perfseer" and argv[1] == subcommand
        args = parser.parse_args(argv[1:])
        assert args.command == subcommand
    # ${VAR:-default} as compose interpolates it with VAR unset
    text = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", (DOCKER / "compose.yaml").read_text())
    compose = yaml.safe_load(text)
    for service, image in (("server", "serve"), ("worker", "worker"), ("trainer", "worker")):
        args = parser.parse_args([image, *compose["services"][service]["command"]])
        assert args.command == image
    assert parser.parse_args(["worker", "--write-results", "--retrain-after", "500"]).retrain_after == 500


def test_worker_requirements_resolve(tmp_path):
    requirements = DOCKER / "requirements-worker-cuda.txt"
    pins = dict(line.split("==") for line in requirements.read_text().splitlines() if "==" in line)
    main = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().splitlines() if "==" in line)
    assert pins["onnxruntime-gpu"] == main["onnxruntime"]  # the GPU worker runs the same onnxruntime release
    for name in ("grpcio", "redis", "nvidia-ml-py", "torch-geometric", "onnx"):
        assert pins[name] == main[name], name
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                             "--report", str(tmp_path / "r.json"), "-r", str(requirements)],
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0 and ("NewConnectionError" in result.stderr or "No matching distribution" in result.stderr
                                   and "Could not fetch" in result.stderr):
        pytest.skip(f"no package index reachable: {shlex.quote(result.stderr.splitlines()[-1])}")
    assert result.returncode == 0, result.stderr[-2000:]
    installed = {item["metadata"]["name"].lower() for item in json.loads((tmp_path / "r.json").read_text())["install"]}
    assert {"onnxruntime-gpu", "nvidia-ml-py", "grpcio", "redis"} <= installed

"""``perfseer serve --processes N``: N processes share one port and, through Redis, what clients taught them."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from perfseer_client import PerfSeerClient
from seernet.graph_cache import stripped_onnx
from seernet.spaces import SPACES
from server.app import StartupError, check_startup
from tests.conftest import ROOT, free_port
from tests.server_fixtures import make_settings


def test_several_processes_need_redis_and_a_fixed_port(predictors_dir):
    settings = make_settings(predictors_dir)
    settings.processes = 2
    with pytest.raises(StartupError, match="--redis"):
        check_startup(settings)
    settings.redis_url, settings.port = "redis://127.0.0.1:1/0", 0
    with pytest.raises(StartupError, match="fixed --port"):
        check_startup(settings)
    settings.processes = 0
    with pytest.raises(StartupError, match="--processes must be in"):
        check_startup(settings)


def test_a_client_can_ask_for_a_sensible_number_of_connections():
    with pytest.raises(ValueError, match="connections"):
        PerfSeerClient("127.0.0.1:1", connections=0)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@pytest.mark.timeout(240)
def test_two_processes_share_the_port_and_what_clients_taught_them(predictors_dir, redis_server):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "perfseer.cli", "serve", "--port", str(port), "--processes", "2", "--redis",
         redis_server.url, "--predictors", str(predictors_dir)], cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        with PerfSeerClient(f"127.0.0.1:{port}", connections=4, timeout_s=60) as client:
            deadline = time.time() + 120
            while time.time() < deadline:
                try:
                    if all(client.ready() for _ in range(4)):  # ready() goes round the connections
                        break
                except Exception:  # not listening yet
                    pass
                time.sleep(0.5)
            children = _children(server.pid)
            assert len(children) >= 1  # the second serving process (spawned)
            model = stripped_onnx(SPACES["mlp"].sample_n(1, seed=3)[0])
            first = client.predict(model, batch_size=2)
            # the next calls go out on the other connections, by hash only: the process behind each knows the
            # model because the first one put it in Redis
            for _ in range(3):
                again = client.predict(model, batch_size=2)
                assert again.model_sha256 == first.model_sha256 and again["infer_time_ms"] == first["infer_time_ms"]
                assert again.cache_hit
            configs = [{"space": "nasbench201", "arch": c.arch} for c in SPACES["nasbench201"].sample_n(12, seed=5)]
            results = client.predict_many(configs, batch_size=1, chunk=3)  # four chunks at once
            assert len(results) == 12 and all(r["infer_time_ms"] > 0 for r in results)
            assert [r["infer_time_ms"] for r in results] == [client.predict(c)["infer_time_ms"] for c in configs]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    assert server.returncode == 0
    time.sleep(0.5)
    assert not [pid for pid in children if os.path.exists(f"/proc/{pid}") and
                "zombie" not in open(f"/proc/{pid}/status").read().lower()]  # stopping the first stops the rest

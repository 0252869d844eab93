"""A PerfSeer server in its own process under an address-space cap, for the hostile-request tests.

``python -m tests.reliability.hostile_server PREDICTORS REDIS_URL AS_LIMIT_MB``: prints the port, then serves
until stdin closes.  A regression that allocates gigabytes makes this process fail, not the machine.
"""
from __future__ import annotations

import resource
import sys


def main() -> int:
    predictors, redis_url, limit_mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cap = limit_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    import torch

    torch.set_num_threads(1)
    from pathlib import Path

    from server.app import build_server
    from server.settings import Settings

    settings = Settings.from_env()
    settings.host, settings.port, settings.predictors, settings.redis_url = "127.0.0.1", 0, Path(predictors), redis_url
    running = build_server(settings, watch_interval_s=1.0, max_workers=16)
    print(running.port, flush=True)
    sys.stdin.read()
    running.stop(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())

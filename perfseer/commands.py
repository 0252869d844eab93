"""Subcommands added by later parts of PerfSeer (training, serving, benchmarks)."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    return None

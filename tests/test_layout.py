"""Imports point one way: perfseer (CLI) → server, profiler_worker → seernet.  Read from the source, not run."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "seernet": {"server", "profiler_worker", "perfseer"},
    "profiler_worker": {"server", "perfseer"},
    "server": {"perfseer"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):  # function-level (lazy) imports count too
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_upward_imports(package):
    offenders = []
    for path in sorted((REPO / package).rglob("*.py")):
        bad = imported_packages(path) & FORBIDDEN[package]
        if bad:
            offenders.append(f"{path.relative_to(REPO)} imports {sorted(bad)}")
    assert not offenders, "\n".join(offenders)


def test_the_checker_sees_lazy_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from server.app import build_server\n    import perfseer.cli\n")
    assert {"server", "perfseer"} <= imported_packages(source)


def test_limit_defaults_are_written_once():
    """The limits' defaults live in seernet/settings.py; no other module repeats them."""
    needles = ("256 * 2**20", "20000", "20_000")
    hits = [str(p.relative_to(REPO)) for pkg in ("seernet", "server", "perfseer", "profiler_worker")
            for p in (REPO / pkg).rglob("*.py") if any(n in p.read_text() for n in needles)]
    assert set(hits) <= {"seernet/settings.py", "server/settings.py"}, hits

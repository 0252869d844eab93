"""The dataset: one SQLite file a data scientist can open with ``sqlite3`` or ``pandas.read_sql``.

One row per measured (model config, device, batch size, input size).  The job
id is the primary key, so a result delivered twice (a re-claimed job, a replayed
stream entry) lands exactly once.  Writes are single-statement transactions:
a crash never leaves half a row.
"""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Iterator

from .job import METRICS, ProfileResult

TABLES = ("measurements", "remeasurements")
QUARANTINE_TABLE = "quarantined"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    job_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    family TEXT NOT NULL,
    space TEXT,
    config_id TEXT NOT NULL,
    config_json TEXT NOT NULL,
    batch_size INTEGER NOT NULL,
    input_size INTEGER,
    device TEXT NOT NULL,
    device_key TEXT NOT NULL,
    {metric_columns},
    infer_time_cv REAL, train_time_cv REAL,
    infer_repeats INTEGER, train_repeats INTEGER,
    threads INTEGER,
    stats_json TEXT NOT NULL,
    settings_json TEXT NOT NULL,
    device_json TEXT NOT NULL,
    worker TEXT NOT NULL DEFAULT '',
    measured_at REAL NOT NULL,
    inserted_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS {table}_family ON {table}(family);
CREATE INDEX IF NOT EXISTS {table}_config ON {table}(config_id, device_key);
"""

# Per-operator inference profiles (``profiler_worker.op_profile``), keyed by the measurement's job id.
_OPERATOR_SCHEMA = """
CREATE TABLE IF NOT EXISTS operator_profiles (
    job_id TEXT NOT NULL,
    kernel TEXT NOT NULL,          -- onnxruntime's node in the optimized graph
    op_type TEXT NOT NULL,
    provider TEXT NOT NULL,
    median_ms REAL NOT NULL,
    nodes_json TEXT NOT NULL,      -- the original ONNX nodes it executes; [] = a kernel the runtime inserted
    PRIMARY KEY (job_id, kernel)
);
CREATE TABLE IF NOT EXISTS operator_profile_runs (
    job_id TEXT PRIMARY KEY,
    end_to_end_ms REAL NOT NULL,   -- median of the profiled runs (onnxruntime's executor spans)
    kernel_share REAL NOT NULL,    -- Σ kernel medians / end_to_end_ms
    uncovered_json TEXT NOT NULL   -- original nodes no kernel covers (folded away)
);
"""


class DatasetStore:
    """Append-only measurement store (SQLite, WAL mode)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as conn, conn:
            for table in TABLES:
                conn.executescript(_SCHEMA.format(table=table, metric_columns=", ".join(f"{m} REAL" for m in METRICS)))
            conn.executescript(_OPERATOR_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.row_factory = sqlite3.Row
        return conn

    def add(self, result: ProfileResult, table: str = "measurements") -> bool:
        """Insert ``result``; False if its job id is already stored (exactly-once)."""
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}")
        config = json.loads(result.config_json) if result.config_json else {}
        infer, train = result.stats.get("infer", {}), result.stats.get("train", {})
        row = {
            "job_id": result.job_id, "status": result.status, "reason": result.reason, "family": result.family,
            "space": config.get("space"), "config_id": result.config_id, "config_json": result.config_json,
            "batch_size": result.batch_size, "input_size": result.input_size, "device": result.device,
            "device_key": result.device_key, **{m: result.metrics.get(m) for m in METRICS},
            "infer_time_cv": infer.get("cv"), "train_time_cv": train.get("cv"),
            "infer_repeats": infer.get("repeats"), "train_repeats": train.get("repeats"),
            "threads": result.settings.get("threads"), "stats_json": json.dumps(result.stats),
            "settings_json": json.dumps(result.settings), "device_json": json.dumps(result.descriptor),
            "worker": result.worker, "measured_at": result.measured_at, "inserted_at": time.time(),
        }
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with closing(self._connect()) as conn, conn:  # one transaction: the row and its operator profile
            cursor = conn.execute(f"INSERT OR IGNORE INTO {table} ({columns}) VALUES ({marks})", list(row.values()))
            added = cursor.rowcount == 1
            if added and table == "measurements" and result.operators:
                self._add_operators(conn, result.job_id, result.operators)
            return added

    @staticmethod
    def _add_operators(conn: sqlite3.Connection, job_id: str, profile: dict) -> None:
        conn.executemany("INSERT OR IGNORE INTO operator_profiles VALUES (?, ?, ?, ?, ?, ?)",
                         [(job_id, k["kernel"], k["op_type"], k["provider"], k["median_ms"], json.dumps(k["nodes"]))
                          for k in profile.get("kernels", [])])
        conn.execute("INSERT OR IGNORE INTO operator_profile_runs VALUES (?, ?, ?, ?)",
                     (job_id, profile.get("end_to_end_ms", 0.0), profile.get("kernel_share", 0.0),
                      json.dumps(profile.get("uncovered", []))))

    def operator_profile(self, job_id: str) -> list[dict]:
        """The kernels measured for ``job_id``, costliest first ([] when the row has no profile)."""
        with closing(self._connect()) as conn:
            rows = conn.execute("SELECT * FROM operator_profiles WHERE job_id = ? ORDER BY median_ms DESC",
                                (job_id,)).fetchall()
        return [{**dict(r), "nodes": json.loads(r["nodes_json"])} for r in rows]

    def operator_kernels(self, job_ids: set[str] | None = None
                         ) -> dict[str, tuple[list[tuple[list[str], float]], float]]:
        """Every stored profile as ``job_id → ([(original nodes, median ms)], end_to_end_ms)``, what
        ``seernet.data.samples_from_rows`` labels operators with, in two queries; ``job_ids`` filters."""
        with closing(self._connect()) as conn:
            rows = conn.execute("SELECT job_id, median_ms, nodes_json FROM operator_profiles").fetchall()
            runs = dict(conn.execute("SELECT job_id, end_to_end_ms FROM operator_profile_runs").fetchall())
        kernels: dict[str, list[tuple[list[str], float]]] = {}
        for r in rows:
            if job_ids is None or r["job_id"] in job_ids:
                kernels.setdefault(r["job_id"], []).append((json.loads(r["nodes_json"]), float(r["median_ms"])))
        return {job: (found, float(runs.get(job, 0.0))) for job, found in kernels.items()}

    def quarantine(self, job_ids: list[str], reason: str) -> int:
        """Move rows out of ``measurements`` into ``quarantined`` with ``reason``; returns rows moved.

        Why a table and not a delete: a measurement found to be wrong (a build that
        shared the measuring core, a noisy machine) is still evidence of what went
        wrong; it stays in the file, out of training and evaluation, and its config
        becomes missing again, so a resumed build measures it afresh.  One
        transaction: a row is in exactly one of the two tables.
        """
        if not reason.strip():
            raise ValueError("a quarantine needs a reason")
        ids = sorted(set(job_ids))
        moved = 0
        with closing(self._connect()) as conn, conn:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {QUARANTINE_TABLE} AS "
                         f"SELECT *, '' AS quarantine_reason FROM measurements WHERE 0")
            for start in range(0, len(ids), 500):  # SQLite bounds the number of parameters
                chunk = ids[start:start + 500]
                marks = ", ".join("?" for _ in chunk)
                conn.execute(f"INSERT INTO {QUARANTINE_TABLE} SELECT *, ? FROM measurements WHERE job_id IN ({marks})",
                             [reason, *chunk])
                moved += conn.execute(f"DELETE FROM measurements WHERE job_id IN ({marks})", chunk).rowcount
        return moved

    def quarantined_count(self) -> int:
        with closing(self._connect()) as conn:
            exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                  (QUARANTINE_TABLE,)).fetchone()
            return conn.execute(f"SELECT COUNT(*) FROM {QUARANTINE_TABLE}").fetchone()[0] if exists else 0

    def has_job(self, job_id: str, table: str = "measurements") -> bool:
        with closing(self._connect()) as conn:
            return conn.execute(f"SELECT 1 FROM {table} WHERE job_id = ?", (job_id,)).fetchone() is not None

    def job_ids(self, table: str = "measurements") -> set[str]:
        with closing(self._connect()) as conn:
            return {r[0] for r in conn.execute(f"SELECT job_id FROM {table}")}

    def rows(self, table: str = "measurements", status: str | None = "ok", where: str = "",
             params: tuple = ()) -> Iterator[dict]:
        clauses = [c for c in (("status = ?" if status else ""), where) if c]
        sql = f"SELECT * FROM {table}" + (" WHERE " + " AND ".join(clauses) if clauses else "") + " ORDER BY inserted_at"
        with closing(self._connect()) as conn:
            for row in conn.execute(sql, ((status,) if status else ()) + params):
                yield dict(row)

    def device_keys(self, table: str = "measurements") -> list[str]:
        """The measuring setups present (status ok), sorted."""
        with closing(self._connect()) as conn:
            return [r[0] for r in conn.execute(
                f"SELECT DISTINCT device_key FROM {table} WHERE status = 'ok' ORDER BY device_key")]

    def count(self, table: str = "measurements", status: str | None = None) -> int:
        with closing(self._connect()) as conn:
            if status is None:
                return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            return conn.execute(f"SELECT COUNT(*) FROM {table} WHERE status = ?", (status,)).fetchone()[0]

    def stats(self) -> dict:
        """Summary for ``perfseer dataset stats``: rows, per-family and per-device counts, failures."""
        with closing(self._connect()) as conn:
            per_family = {r[0]: r[1] for r in conn.execute(
                "SELECT family, COUNT(*) FROM measurements WHERE status = 'ok' GROUP BY family ORDER BY family")}
            per_device = {r[0]: r[1] for r in conn.execute(
                "SELECT device_key, COUNT(*) FROM measurements WHERE status = 'ok' GROUP BY device_key")}
            per_status = {r[0]: r[1] for r in conn.execute("SELECT status, COUNT(*) FROM measurements GROUP BY status")}
            batch = {str(r[0]): r[1] for r in conn.execute(
                "SELECT batch_size, COUNT(*) FROM measurements WHERE status = 'ok' GROUP BY batch_size ORDER BY batch_size")}
            metric_counts = {m: conn.execute(f"SELECT COUNT({m}) FROM measurements WHERE status = 'ok'").fetchone()[0]
                             for m in METRICS}
            remeasured = conn.execute("SELECT COUNT(*) FROM remeasurements WHERE status = 'ok'").fetchone()[0]
            profiled = {r[0]: {"rows": r[1], "kernels_per_row": round(r[2], 1), "kernel_share": round(r[3], 3)}
                        for r in conn.execute(
                "SELECT m.family, COUNT(*), AVG((SELECT COUNT(*) FROM operator_profiles o WHERE o.job_id = m.job_id)),"
                " AVG(r.kernel_share) FROM measurements m JOIN operator_profile_runs r USING (job_id)"
                " WHERE m.status = 'ok' GROUP BY m.family ORDER BY m.family")}
        return {
            "path": str(self.path),
            "rows": sum(per_family.values()),
            "families": per_family,
            "devices": per_device,
            "status": per_status,
            "batch_sizes": batch,
            "metric_counts": metric_counts,
            "remeasured": remeasured,
            "quarantined": self.quarantined_count(),
            "operator_profiles": profiled,  # per family: profiled rows, kernels per row, Σ kernels / end to end
        }

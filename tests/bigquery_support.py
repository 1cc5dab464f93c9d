"""A local BigQuery for tests: the REST shapes google-cloud-bigquery uses, tables in DuckDB.

``FakeBigQuery`` is a ``LocalServer`` handler answering

- ``tabledata.insertAll`` (``POST .../datasets/D/tables/T/insertAll``): rows de-duplicated by
  ``insertId`` as BigQuery does; ``script`` queues what the next requests answer instead
  (an HTTP status; ``"stored_then_503"``: the rows are stored but the answer is a 503, as
  when a reply is lost; or ``{index: reason}``: ``insertErrors`` for those rows, which are
  not stored); ``down`` answers 503 to every insert; ``hang`` holds inserts until ``release``;
- ``jobs.insert`` / ``jobs.get`` / ``jobs.getQueryResults`` for queries: GoogleSQL
  transpiled by sqlglot to DuckDB and run over the inserted rows (named parameters too).

The tables are made from the mirror's own DDL (``monitor.telemetry.mirror_tables``),
transpiled the same way, so the DDL is exercised too.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import duckdb
import sqlglot
from phasewatch_client.kit.testing import StubReply, StubRequest

from monitor.telemetry.mirror_tables import TABLES, ddl

PROJECT, DATASET = "test-project", "d"


def duckdb_tables(con: duckdb.DuckDBPyConnection, project: str = PROJECT, dataset: str = DATASET,
                  prefix: str = "") -> dict[str, str]:
    """The mirror's tables in ``con`` as ``project.dataset.prefix+name``; their ids by name."""
    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # PARTITION BY / CLUSTER BY: not DuckDB's
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"ATTACH IF NOT EXISTS ':memory:' AS \"{project}\"")
    con.execute(f'CREATE SCHEMA IF NOT EXISTS "{project}"."{dataset}"')
    ids = {name: f"{project}.{dataset}.{prefix}{name}" for name in TABLES}
    for statement in sqlglot.transpile(ddl(ids), read="bigquery", write="duckdb"):
        con.execute(statement)
    return ids


def insert_rows(con: duckdb.DuckDBPyConnection, table_id: str, rows: list[dict[str, Any]]) -> None:
    """Rows as insertAll's JSON into a DuckDB table of the mirror."""
    if not rows:
        return
    name = table_id.split(".")[-1]
    columns = [c.name for c in next(t for t in TABLES.values() if name.endswith(t.name)).columns]
    target = ".".join(f'"{part}"' for part in table_id.split("."))
    marks = "(" + ", ".join("?" for _ in columns) + ")"
    quoted = ", ".join(f'"{c}"' for c in columns)
    # One statement: DuckDB's executemany runs a statement per row, far slower.
    con.execute(f"INSERT INTO {target} ({quoted}) VALUES {', '.join(marks for _ in rows)}",
                [row.get(c) for row in rows for c in columns])


def run_query(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> Any:
    """GoogleSQL run on DuckDB (one statement)."""
    return con.execute(to_duckdb(sql), params or {})


@functools.lru_cache(maxsize=256)
def to_duckdb(sql: str) -> str:
    """One GoogleSQL statement in DuckDB's dialect (sqlglot)."""
    [statement] = sqlglot.transpile(sql, read="bigquery", write="duckdb")
    return statement


@dataclass
class FakeBigQuery:
    """See the module docstring."""

    con: duckdb.DuckDBPyConnection = field(default_factory=duckdb.connect)
    script: deque[Any] = field(default_factory=deque)  # int (HTTP status) or {index: reason}
    down: bool = False
    hang: bool = False  # inserts wait for ``release`` (after setting ``entered``)
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    inserts: list[dict[str, Any]] = field(default_factory=list)  # every insertAll body received
    queries: list[str] = field(default_factory=list)
    _ids: dict[str, set[str]] = field(default_factory=dict)
    _jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _results: dict[str, tuple[list[dict[str, str]], list[tuple[Any, ...]]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        duckdb_tables(self.con)

    def stored(self, table: str) -> list[dict[str, Any]]:
        cur = self.con.execute(f'SELECT * FROM "{PROJECT}"."{DATASET}"."{table}"')
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def __call__(self, request: StubRequest) -> StubReply:
        parts = request.path.split("/")  # /bigquery/v2/projects/{p}/...
        if parts[1:4] != ["bigquery", "v2", "projects"]:
            return _error(404, "notFound", f"no such path {request.path}")
        if self.hang and parts[-1] == "insertAll":
            self.entered.set()
            self.release.wait(30)
        with self._lock:
            if request.method == "POST" and parts[-1] == "insertAll":
                return self._insert_all(parts[6], parts[8], request.json())
            if request.method == "POST" and parts[5] == "jobs":
                return self._insert_job(parts[4], request.json())
            if request.method == "GET" and parts[5] in ("jobs", "queries"):
                job = self._jobs.get(parts[6])
                if job is None:
                    return _error(404, "notFound", f"no job {parts[6]}")
                return StubReply.of_json(job if parts[5] == "jobs" else self._page(parts[6]))
        return _error(404, "notFound", f"no such path {request.path}")

    def _insert_all(self, dataset: str, table: str, body: dict[str, Any]) -> StubReply:
        self.inserts.append({"table": table, **body})
        if self.down:
            return _error(503, "backendError", "the service is unavailable")
        step = self.script.popleft() if self.script else None
        if isinstance(step, int):
            return _error(step, "backendError" if step >= 500 else "invalid", f"scripted {step}")
        failing: dict[int, str] = step if isinstance(step, dict) else {}
        seen = self._ids.setdefault(table, set())
        fresh = []
        for i, entry in enumerate(body["rows"]):
            if i in failing or entry["insertId"] in seen:
                continue
            seen.add(entry["insertId"])
            fresh.append(entry["json"])
        insert_rows(self.con, f"{PROJECT}.{dataset}.{table}", fresh)
        if step == "stored_then_503":
            return _error(503, "backendError", "stored, but the answer was lost")
        errors = [{"index": i, "errors": [{"reason": r, "message": f"row {i}: {r}"}]}
                  for i, r in sorted(failing.items())]
        return StubReply.of_json({"kind": "bigquery#tableDataInsertAllResponse",
                                  **({"insertErrors": errors} if errors else {})})

    def _insert_job(self, project: str, body: dict[str, Any]) -> StubReply:
        query = body["configuration"]["query"]
        self.queries.append(query["query"])
        params = {p["name"]: _value(p) for p in query.get("queryParameters", [])}
        job_id = body.get("jobReference", {}).get("jobId") or uuid.uuid4().hex
        reference = {"projectId": project, "jobId": job_id, "location": "US"}
        status: dict[str, Any] = {"state": "DONE"}
        try:
            cur = run_query(self.con, query["query"], params)
            schema = [{"name": d[0], "type": _bq_type(str(d[1]))} for d in cur.description]
            self._results[job_id] = (schema, cur.fetchall())
        except (duckdb.Error, sqlglot.errors.SqlglotError) as exc:
            error = {"reason": "invalidQuery", "message": str(exc)}
            status.update(errorResult=error, errors=[error])
            self._results[job_id] = ([], [])
        job = {"jobReference": reference, "status": status, "configuration": body["configuration"],
               "statistics": {"query": {"statementType": "SELECT"}}}
        self._jobs[job_id] = job
        return StubReply.of_json(job)

    def _page(self, job_id: str) -> dict[str, Any]:
        schema, rows = self._results[job_id]
        return {
            "jobComplete": True, "jobReference": self._jobs[job_id]["jobReference"],
            "schema": {"fields": schema}, "totalRows": str(len(rows)),
            "rows": [{"f": [{"v": _cell(v)} for v in row]} for row in rows],
        }


def _value(param: dict[str, Any]) -> Any:
    kind, value = param["parameterType"]["type"], param["parameterValue"]["value"]
    if kind == "DATE":
        return date.fromisoformat(value)
    if kind == "TIMESTAMP":
        return datetime.fromisoformat(value.replace(" ", "T").replace("+00:00", "") + "+00:00")
    if kind == "INT64":
        return int(value)
    return value


def _bq_type(duck: str) -> str:
    return {"VARCHAR": "STRING", "BIGINT": "INTEGER", "INTEGER": "INTEGER", "HUGEINT": "INTEGER",
            "DOUBLE": "FLOAT", "BOOLEAN": "BOOLEAN", "DATE": "DATE"}.get(duck.split("(")[0], "STRING")


def _cell(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _error(status: int, reason: str, message: str) -> StubReply:
    body = {"error": {"code": status, "message": message, "errors": [{"reason": reason, "message": message}]}}
    return StubReply(status, json.dumps(body).encode(), (("Content-Type", "application/json"),))

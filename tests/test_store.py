"""Both stores (SQLite and a real PostgreSQL): migrations, idempotency, all-or-nothing
batches, dead letters, components' steps and transactions, following, leases."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from unittest import mock

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import monitor.store.schema as schema
from monitor.errors import StoreError
from monitor.events import Event
from monitor.store.base import utc_text
from monitor.store.leases import Leases
from monitor.store.migrations import statements, translate
from monitor.store.postgres import PostgresStore, describe, pyformat
from monitor.store.registry import Store, open_store, redacted
from monitor.store.schema import MIGRATIONS
from monitor.store.sqlite import SQLiteStore
from tests.factories import make_event

NOW = datetime(2026, 1, 18, tzinfo=UTC)


def _ev(event_id: str) -> Event:
    return make_event("phase1", "started", "2026-01-18T06:00:00Z", event_id=event_id, mode="overnight")


def _raw(db: str) -> Any:
    """A plain driver connection to the store's database (autocommit)."""
    if db.startswith("postgresql://"):
        return psycopg.connect(db, autocommit=True)
    return sqlite3.connect(db, isolation_level=None)


def test_schema_version_and_reopening(db: str) -> None:
    store = open_store(db)
    assert store.schema_version == len(MIGRATIONS)  # type: ignore[attr-defined]
    store.close()
    again = open_store(db)  # reopening applies nothing twice
    assert again.schema_version == len(MIGRATIONS)  # type: ignore[attr-defined]
    again.close()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_newer_schema_is_refused(db: str) -> None:
    open_store(db).close()
    with _raw(db) as raw:
        if isinstance(raw, sqlite3.Connection):
            raw.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
        else:
            raw.execute("UPDATE component_versions SET version = %s WHERE component = 'events'",
                        (len(MIGRATIONS) + 5,))
    with pytest.raises(StoreError, match="upgrade phasewatch"):
        open_store(db)


def test_idempotent_on_event_id(db: str) -> None:
    store = open_store(db)
    first = store.append([_ev("a"), _ev("b"), _ev("a")], NOW)
    assert first.inserted == (True, True, False)
    second = store.append([_ev("b"), _ev("c")], NOW)
    assert (second.accepted, second.duplicates) == (1, 1)
    assert store.count() == 3
    assert [e.event_id for e in store.events()] == ["a", "b", "c"]
    store.close()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 260), st.sampled_from([150, 10**6])).flatmap(
    # lengths drawn evenly (most past a group); ids from a few (repeats) or many (none)
    lambda size: st.lists(st.integers(0, size[1]), min_size=size[0], max_size=size[0])),
    min_size=1, max_size=3))
def test_sqlite_stores_the_first_of_each_id_in_order(batches: list[list[int]]) -> None:
    # Batches longer than an INSERT's group of rows, with repeats inside a group, across
    # groups and of ids stored before: what is stored and flagged is what one row at a
    # time would give.
    store = SQLiteStore(":memory:")
    seen: list[str] = []
    for batch in batches:
        ids = [f"e{i}" for i in batch]
        expected = []
        for event_id in ids:
            expected.append(event_id not in seen)
            if expected[-1]:
                seen.append(event_id)
        assert store.append([_ev(i) for i in ids], NOW).inserted == tuple(expected)
    assert [e.event_id for e in store.events()] == seen
    store.close()


def test_batch_is_all_or_nothing(db: str) -> None:
    store = open_store(db)
    with _raw(db) as raw:  # the database refuses one row of the batch
        if isinstance(raw, sqlite3.Connection):
            raw.execute("CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.event_id = 'poison' "
                        "BEGIN SELECT RAISE(ABORT, 'refused'); END")
        else:
            raw.execute("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                        " IF NEW.event_id = 'poison' THEN RAISE EXCEPTION 'refused'; END IF;"
                        " RETURN NEW; END $$")
            raw.execute("CREATE TRIGGER refuse BEFORE INSERT ON events FOR EACH ROW"
                        " EXECUTE FUNCTION refuse()")
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.RaiseException)):
        store.append([_ev("ok1"), _ev("poison")], NOW)
    assert store.count() == 0
    assert store.append([_ev("ok1")], NOW).accepted == 1
    store.close()


def test_dead_letters_kept_once_per_message(db: str) -> None:
    store = open_store(db)
    kw: dict[str, Any] = dict(received_at=NOW, source="pubsub:sub", reason="schema", detail="d",
                              payload="eA==")
    assert store.add_dead_letter(message_id="m1", **kw) is True
    assert store.add_dead_letter(message_id="m1", **kw) is False
    (letter,) = store.dead_letters()
    assert (letter.message_id, letter.reason, letter.received_at) == ("m1", "schema", NOW)
    store.close()


def test_dead_letters_are_selected_oldest_first_and_removed_by_id(db: str) -> None:
    """What a redrive reads and deletes: the oldest letters (by ids, reason, past an id, up to
    a limit), their count without the limit, and the letters of ids removed, once."""
    store = open_store(db)
    for i, reason in enumerate(["unknown_name", "schema", "unknown_name", "unknown_name"]):
        store.add_dead_letter(received_at=NOW + timedelta(minutes=i), source="pubsub:sub",
                              message_id=f"m{i}", reason=reason, detail="d", payload="eA==")
    ids = [d.id for d in reversed(store.dead_letters())]  # oldest first
    assert [d.message_id for d in store.oldest_dead_letters()] == ["m0", "m1", "m2", "m3"]
    assert [d.message_id for d in store.oldest_dead_letters(reason="unknown_name", limit=2)] == ["m0", "m2"]
    assert [d.message_id for d in store.oldest_dead_letters(reason="unknown_name", after=ids[0])] == ["m2", "m3"]
    assert [d.message_id for d in store.oldest_dead_letters(ids=[ids[3], ids[1]])] == ["m1", "m3"]
    assert store.oldest_dead_letters(ids=[]) == []
    assert store.count_dead_letters(reason="unknown_name") == 3
    assert store.count_dead_letters(reason="unknown_name", after=ids[2]) == 1
    assert store.count_dead_letters(ids=[ids[0], 999_999]) == 1
    assert store.remove_dead_letters([ids[0], ids[2]]) == 2
    assert store.remove_dead_letters([ids[0]]) == 0  # already gone
    assert store.remove_dead_letters([]) == 0
    assert [d.message_id for d in store.dead_letters()] == ["m3", "m1"]
    store.close()


def test_component_migrations_and_transactions(db: str) -> None:
    store = open_store(db)
    steps = ("CREATE TABLE widgets (id INTEGER PRIMARY KEY, name TEXT, weight REAL)",
             "ALTER TABLE widgets ADD COLUMN colour TEXT")
    store.migrate_component("widgets", steps[:1])
    store.migrate_component("widgets", steps)  # only the new step runs
    store.migrate_component("widgets", steps)
    with store.transaction() as tx:
        row = tx.execute("INSERT INTO widgets (name, weight, colour) VALUES ('a', 0.1, 'red')"
                         " RETURNING id").fetchone()
        assert row[0] == 1  # an identity in both
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.execute("INSERT INTO widgets (name, colour) VALUES ('b', 'blue')")
        raise RuntimeError("abort")
    # REAL keeps a double's precision in both; ? and a literal % pass through
    assert store.read("SELECT name, weight, colour FROM widgets WHERE name LIKE '%' || ?",
                      ("a",)) == [("a", 0.1, "red")]
    with pytest.raises(StoreError, match="component widgets"):
        store.migrate_component("widgets", steps[:1])
    store.close()


def test_text_sorts_bytewise_like_sqlite(postgres_url: str) -> None:
    """Timestamps are fixed-width text: their order must be the bytes', whatever the locale."""
    store = PostgresStore(postgres_url)
    store.migrate_component("words", ("CREATE TABLE words (w TEXT)",))
    words = ["a-b", "a_b", "aB", "ab", "Ab", "a b", "2026-01-18T06:00:00.000000Z",
             "2026-01-18 06:00:00"]
    with store.transaction() as tx:
        tx.executemany("INSERT INTO words (w) VALUES (?)", [(w,) for w in words])
    assert [r[0] for r in store.read("SELECT w FROM words ORDER BY w")] == sorted(words)
    store.close()


def test_numeric_columns_backfilled_by_migration(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    for step in MIGRATIONS[:2]:
        for statement in statements(step, "sqlite"):
            db.execute(statement)
    db.execute("PRAGMA user_version = 2")
    db.execute(
        "INSERT INTO events (event_id, pipeline, run_date, mode, phase, processor, status, ts,"
        " received_at, body) VALUES ('old', 'nba', '2026-01-17', 'overnight', 'phase3', NULL,"
        " 'succeeded', '2026-01-18T06:00:00.000000Z', '2026-01-18T06:00:00.000000Z', ?)",
        ('{"duration_s": 12.5, "records": 7, "expected_records": 9,'
         ' "data_as_of": "2026-01-18T05:00:00.500000Z"}',),
    )
    db.commit()
    db.close()
    store = SQLiteStore(path)
    row = store.read("SELECT duration_s, records, expected_records, data_as_of FROM events")[0]
    assert row[:3] == (12.5, 7, 9)
    assert abs(row[3] - datetime(2026, 1, 18, 5, 0, 0, 500000, tzinfo=UTC).timestamp()) < 1e-3
    fresh = make_event("phase3", "succeeded", "2026-01-18T06:00:00Z", event_id="new",
                       mode="overnight", duration_s=3.0, data_as_of="2026-01-18T05:30:00Z")
    store.append([fresh], NOW)
    new = store.read("SELECT duration_s, data_as_of FROM events WHERE event_id = 'new'")[0]
    assert new == (3.0, datetime(2026, 1, 18, 5, 30, tzinfo=UTC).timestamp())


def test_numeric_backfill_on_postgresql_matches_sqlite(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as raw:
        for step in (MIGRATIONS[1], *MIGRATIONS[:2]):
            for statement in statements(step, "postgresql"):
                raw.execute(statement)
        raw.execute("INSERT INTO component_versions VALUES ('events', 2)")
        raw.execute(
            "INSERT INTO events (event_id, pipeline, run_date, mode, phase, processor, status, ts,"
            " received_at, body) VALUES ('old', 'nba', '2026-01-17', 'overnight', 'phase3', NULL,"
            " 'succeeded', '2026-01-18T06:00:00.000000Z', '2026-01-18T06:00:00.000000Z', %s)",
            ('{"duration_s": 12.5, "records": 7, "expected_records": 9,'
             ' "data_as_of": "2026-01-18T05:00:00.500000Z"}',),
        )
    store = PostgresStore(postgres_url)
    row = store.read("SELECT duration_s, records, expected_records, data_as_of FROM events")[0]
    assert row == (12.5, 7, 9, datetime(2026, 1, 18, 5, 0, 0, 500000, tzinfo=UTC).timestamp())
    store.close()


def test_both_stores_have_the_same_tables_and_columns(tmp_path: Path, postgres_url: str) -> None:
    """The translated DDL leaves no table, column or nullability behind."""
    lite = SQLiteStore(tmp_path / "s.db")
    pg = PostgresStore(postgres_url)
    for store in (lite, pg):
        Leases(store, "x")
    tables = [r[0] for r in lite.read("SELECT name FROM sqlite_master WHERE type = 'table'")]
    kinds = {"INTEGER": "bigint", "TEXT": "text", "REAL": "double precision"}
    for table in tables:
        expected = {(r[1], kinds[r[2]], bool(r[3]) or bool(r[5])) for r in
                    lite.read(f"PRAGMA table_info({table})")}
        got = {(r[0], r[1], r[2] == "NO") for r in pg.read(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_name = ? AND table_schema = current_schema()", (table,))}
        assert got == expected, table
    lite.close()
    pg.close()


def test_translate_maps_the_types() -> None:
    sql = translate("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, x REAL, s TEXT)")
    assert sql == ('CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,'
                   ' n BIGINT NOT NULL, x DOUBLE PRECISION, s TEXT COLLATE "C")')
    assert statements({"sqlite": "A; B", "postgresql": "C"}, "postgresql") == ["C"]


def test_pyformat_leaves_quoted_question_marks_and_escapes_percent() -> None:
    assert pyformat("SELECT '?', \"a?\", ? WHERE x LIKE 'a%'") == (
        "SELECT '?', \"a?\", %s WHERE x LIKE 'a%%'")


def test_the_events_of_other_processes_are_followed_in_order(db: str) -> None:
    mine, theirs = open_store(db), open_store(db)
    start = mine.position()
    assert mine.tail(start) == ([], start)
    theirs.append([_ev("t1"), _ev("t2")], NOW)
    mine.append([_ev("m1")], NOW)
    theirs.append([_ev("t3")], NOW)
    theirs.append([_ev("t4")], NOW, backfill=True)
    events, position = mine.tail(start)
    assert [(t.event.event_id, t.backfill) for t in events] == [
        ("t1", False), ("t2", False), ("t3", False), ("t4", True)]  # not its own m1
    assert position == mine.position() and mine.tail(position) == ([], position)
    events, _ = theirs.tail(start, limit=2)
    assert events == []  # t1, t2 are its own
    events, _ = theirs.tail(start)
    assert [t.event.event_id for t in events] == ["m1"]
    assert [e.event_id for e in mine.events(until=start)] == []
    assert [e.event_id for e in mine.events(until=position)] == ["t1", "t2", "m1", "t3", "t4"]
    # With its own: up to ``until``; those in ``skip`` left out (once) and taken out of it.
    events, read_to = mine.tail(start, own=True, until=position - 1)
    assert [(t.event.event_id, t.own) for t in events] == [
        ("t1", False), ("t2", False), ("m1", True), ("t3", False)] and read_to == position - 1
    skip = {"m1", "t3"}  # t3 is not its own: never skipped
    events, _ = mine.tail(start, own=True, skip=skip)
    assert [t.event.event_id for t in events] == ["t1", "t2", "t3", "t4"] and skip == {"t3"}
    for store in (mine, theirs):
        store.close()


def test_leases_one_holder_at_a_time_until_expiry(db: str) -> None:
    store = open_store(db)
    first, second = Leases(store, "p1"), Leases(store, "p2")
    ttl = timedelta(seconds=10)
    assert first.acquire("leader", NOW, ttl)
    assert not second.acquire("leader", NOW + timedelta(seconds=9), ttl)
    assert first.acquire("leader", NOW + timedelta(seconds=9), ttl)  # renewed until +19
    assert not second.acquire("leader", NOW + timedelta(seconds=18), ttl)
    assert second.acquire("leader", NOW + timedelta(seconds=20), ttl)  # expired: taken over
    assert second.holders("lead", NOW + timedelta(seconds=20)) == {"leader": "p2"}
    first.release("leader")  # not its lease any more: nothing happens
    assert first.holders("leader", NOW + timedelta(seconds=21)) == {"leader": "p2"}
    second.release("leader")
    assert first.acquire("leader", NOW + timedelta(seconds=21), ttl)
    store.close()


def test_unknown_store_kinds_and_bad_urls_are_named() -> None:
    with pytest.raises(StoreError, match=r"mysql://...: unknown kind of store; allowed: .*postgresql://"):
        open_store("mysql://u@h/db")
    with pytest.raises(StoreError) as info:
        open_store("postgresql://pw_user:s3cret@127.0.0.1:1/db")
    assert "cannot open store postgresql://pw_user@127.0.0.1:1/db" in str(info.value)
    assert "s3cret" not in str(info.value)


def test_urls_lose_their_password_in_logs() -> None:
    assert redacted("postgresql://u:s3cret@db.example:5432/pw") == "postgresql://u@db.example:5432/pw"
    assert describe("postgresql:///pw?host=/cloudsql/p:r:i&user=u&password=x") == (
        "postgresql://u@/pw?host=/cloudsql/p:r:i")
    assert redacted("/data/phasewatch.db") == "/data/phasewatch.db"


def test_utc_text_is_fixed_width_utc_whatever_the_offset() -> None:
    parsed = make_event("phase1", "started", "2024-03-10T01:30:00.25-05:00")  # pydantic's TzInfo
    assert utc_text(parsed.timestamp) == "2024-03-10T06:30:00.250000Z"
    east = datetime(2024, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=5, minutes=45)))
    assert utc_text(east) == "2023-12-31T18:45:00.000000Z"
    instants = [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(microseconds=7 ** k) for k in range(12)]
    texts = [utc_text(i.astimezone(timezone(timedelta(hours=-k)))) for k, i in enumerate(instants)]
    assert sorted(texts) == texts and {len(t) for t in texts} == {27}


def _store_type_check(store: Store) -> None:  # both stores satisfy the protocol mypy checks
    pass


_store_type_check(SQLiteStore(":memory:"))


def test_the_check_results_component_on_both_stores(db: str) -> None:
    """A component's tables and SQL (here the checks') run unchanged on both stores."""
    from monitor.checks.result import CheckResult
    from monitor.checks.store import CheckState, CheckStore

    store = open_store(db)
    checks = CheckStore(store)
    results = [CheckResult("coverage", 0.1 * k, NOW + timedelta(minutes=k), entities=("a", "b"),
                           pipeline="nba") for k in range(3)]
    assert checks.record([*results, results[0]], NOW) == (3, 1)
    latest = checks.latest("coverage")
    assert latest is not None and (latest.value, latest.at, latest.entities) == (
        0.1 * 2, NOW + timedelta(minutes=2), ("a", "b"))
    assert [r.value for _, r in checks.after(0)] == [0.0, 0.1, 0.2]
    checks.set_cursor(checks.last_id())
    assert checks.cursor() == checks.last_id()
    checks.save_state(CheckState("coverage", "warning", NOW))
    assert checks.states()["coverage"].level == "warning"
    assert checks.prune(NOW + timedelta(minutes=2)) == 2
    store.close()


def test_history_reads_recent_run_dates_and_named_runs_in_arrival_order(db: str) -> None:
    store = open_store(db)
    try:
        def put(event_id: str, run_date: str, mode: str, at: datetime) -> None:
            store.append([make_event("phase1", "started", at.isoformat(), event_id=event_id,
                                     run_date=run_date, mode=mode)], at)

        put("old-long-ago", "2025-09-01", "backfill", NOW - timedelta(days=30))
        put("recent-1", "2026-01-10", "overnight", NOW - timedelta(days=8))
        put("old-lately-1", "2025-10-01", "backfill", NOW - timedelta(days=2))
        put("another-old-run", "2025-10-02", "backfill", NOW - timedelta(days=1))
        put("recent-2", "2026-01-11", "overnight", NOW - timedelta(hours=5))
        put("old-lately-2", "2025-10-01", "backfill", NOW - timedelta(hours=1))
        until = store.position()
        put("after-until", "2026-01-12", "overnight", NOW)

        older = store.runs_received_since(NOW - timedelta(days=3), before_run_date=date(2026, 1, 1),
                                          until=until, limit=10)
        # The latest to receive an event first; the run that received none lately is not there.
        assert older == [("nba", "2025-10-01", "backfill"), ("nba", "2025-10-02", "backfill")]
        assert store.runs_received_since(NOW - timedelta(days=3), before_run_date=date(2026, 1, 1),
                                         until=until, limit=1) == [("nba", "2025-10-01", "backfill")]
        with mock.patch.object(schema, "_PAGE", 2):  # the same read a page of two rows at a time
            assert store.runs_received_since(NOW - timedelta(days=3), until=until, limit=10,
                                             before_run_date=date(2026, 1, 1)) == older
        read = list(store.history(since_run_date=date(2026, 1, 1), runs=older[:1], until=until))
        assert [s.event.event_id for s in read] == ["recent-1", "old-lately-1", "recent-2",
                                                    "old-lately-2"]
        assert [s.received_at for s in read] == [NOW - timedelta(days=8), NOW - timedelta(days=2),
                                                 NOW - timedelta(hours=5), NOW - timedelta(hours=1)]
        assert read == sorted(read, key=lambda s: s.position)
    finally:
        store.close()


def test_received_since_reads_back_to_a_time_in_arrival_order_across_pages(
    db: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(schema, "_PAGE", 2)
    store = open_store(db)
    try:
        for i in range(7):
            at = NOW - timedelta(minutes=30 - i * 5)
            store.append([make_event("phase1", "started", at.isoformat(), event_id=f"e{i}",
                                     mode="overnight")], at, backfill=i == 5)
        until = store.position()
        store.append([_ev("after-until")], NOW)
        read = store.received_since(NOW - timedelta(minutes=16), until=until)
        assert [(t.event.event_id, t.backfill) for t in read] == [
            ("e3", False), ("e4", False), ("e5", True), ("e6", False)]
        assert store.received_since(NOW + timedelta(minutes=1), until=until) == []
    finally:
        store.close()

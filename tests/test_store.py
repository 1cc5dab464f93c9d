"""SQLite store: migrations, idempotency, all-or-nothing batches, dead letters."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from monitor.errors import StoreError
from monitor.store.sqlite import MIGRATIONS, SQLiteStore, utc_text
from tests.factories import make_event

NOW = datetime(2026, 1, 18, tzinfo=UTC)


def _ev(event_id: str) -> object:
    return make_event("phase1", "started", "2026-01-18T06:00:00Z", event_id=event_id, mode="overnight")


def test_wal_and_schema_version(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    assert store.schema_version == len(MIGRATIONS)
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    again = SQLiteStore(tmp_path / "s.db")  # reopening applies nothing twice
    assert again.schema_version == len(MIGRATIONS)
    again.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    db.close()
    with pytest.raises(StoreError, match="upgrade phasewatch"):
        SQLiteStore(path)


def test_idempotent_on_event_id(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    first = store.append([_ev("a"), _ev("b"), _ev("a")], NOW)  # type: ignore[list-item]
    assert first.inserted == (True, True, False)
    second = store.append([_ev("b"), _ev("c")], NOW)  # type: ignore[list-item]
    assert (second.accepted, second.duplicates) == (1, 1)
    assert store.count() == 3
    assert [e.event_id for e in store.events()] == ["a", "b", "c"]


def test_batch_is_all_or_nothing(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    store._db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.event_id = 'poison' "
        "BEGIN SELECT RAISE(ABORT, 'refused'); END")
    with pytest.raises(sqlite3.IntegrityError):
        store.append([_ev("ok1"), _ev("poison")], NOW)  # type: ignore[list-item]
    assert store.count() == 0
    assert store.append([_ev("ok1")], NOW).accepted == 1  # type: ignore[list-item]


def test_dead_letters_kept_once_per_message(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    kw = dict(received_at=NOW, source="pubsub:sub", reason="schema", detail="d", payload="eA==")
    assert store.add_dead_letter(message_id="m1", **kw) is True  # type: ignore[arg-type]
    assert store.add_dead_letter(message_id="m1", **kw) is False  # type: ignore[arg-type]
    (letter,) = store.dead_letters()
    assert (letter.message_id, letter.reason) == ("m1", "schema")


def test_component_migrations_and_transactions(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    steps = ("CREATE TABLE widgets (id INTEGER PRIMARY KEY, name TEXT)",
             "ALTER TABLE widgets ADD COLUMN colour TEXT")
    store.migrate_component("widgets", steps[:1])
    store.migrate_component("widgets", steps)  # only the new step runs
    store.migrate_component("widgets", steps)
    with store.transaction() as db:
        db.execute("INSERT INTO widgets (name, colour) VALUES ('a', 'red')")
    with pytest.raises(RuntimeError), store.transaction() as db:
        db.execute("INSERT INTO widgets (name, colour) VALUES ('b', 'blue')")
        raise RuntimeError("abort")
    assert store.read("SELECT name, colour FROM widgets") == [("a", "red")]
    with pytest.raises(StoreError, match="component widgets"):
        store.migrate_component("widgets", steps[:1])


def test_numeric_columns_backfilled_by_migration(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    for step in MIGRATIONS[:2]:
        db.executescript(step)
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


def test_utc_text_is_fixed_width_utc_whatever_the_offset() -> None:
    parsed = make_event("phase1", "started", "2024-03-10T01:30:00.25-05:00")  # pydantic's TzInfo
    assert utc_text(parsed.timestamp) == "2024-03-10T06:30:00.250000Z"
    east = datetime(2024, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=5, minutes=45)))
    assert utc_text(east) == "2023-12-31T18:45:00.000000Z"
    instants = [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(microseconds=7 ** k) for k in range(12)]
    texts = [utc_text(i.astimezone(timezone(timedelta(hours=-k)))) for k, i in enumerate(instants)]
    assert sorted(texts) == texts and {len(t) for t in texts} == {27}

"""The audit log's writes: a line's detail is the text ``json.dumps(detail, default=str)``
gives, and lines written in groups are the lines written one by one, in order."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.actuator.store import AUDIT_GROUP, ActuatorStore, AuditEntry, detail_json
from monitor.store.registry import open_store
from monitor.store.sqlite import SQLiteStore

NOW = datetime(2026, 12, 6, 14, 0, tzinfo=UTC)

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
    st.text(), st.datetimes(timezones=st.just(UTC)), st.dates(),
    st.builds(timedelta, seconds=st.integers(-10**6, 10**6)),
)
_keys = st.one_of(st.text(), st.integers(-100, 100), st.booleans(), st.none(),
                  st.floats(allow_nan=False))
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner),
                            st.dictionaries(_keys, inner, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_values, st.dictionaries(st.text(), _values, max_size=6)))
def test_detail_json_is_json_dumps_with_str_for_the_rest(value: Any) -> None:
    assert detail_json(value) == json.dumps(value, default=str)


def test_detail_json_refuses_what_json_dumps_refuses() -> None:
    loop: dict[str, Any] = {"a": [1]}
    loop["a"].append(loop)
    with pytest.raises(ValueError, match="Circular reference detected"):
        detail_json(loop)
    with pytest.raises(TypeError):
        json.dumps({(1, 2): "a tuple key"}, default=str)
    with pytest.raises(TypeError):
        detail_json({(1, 2): "a tuple key"})
    assert detail_json({"x": math.inf, "d": date(2026, 1, 2)}) == '{"x": Infinity, "d": "2026-01-02"}'


def _entries(n: int) -> list[AuditEntry]:
    return [AuditEntry(NOW + timedelta(seconds=i % 3), "decision", "trigger", "not_taken", "nba",
                       f"2026-11-{1 + i % 28:02d}", "overnight", f"phase{2 + i % 4}",
                       processor=None if i % 2 else f"p{i}", attempt=i if i % 5 == 0 else None,
                       manual=i % 7 == 0, reason="outside_horizon",
                       detail={"why": f"note {i}", "event_id": f"e-{i}", "n": i})
            for i in range(n)]


@pytest.mark.parametrize("count", [0, 1, AUDIT_GROUP - 1, AUDIT_GROUP, AUDIT_GROUP + 1,
                                   2 * AUDIT_GROUP + 5, 3 * AUDIT_GROUP])
def test_lines_written_in_groups_are_the_lines_written_one_by_one(count: int) -> None:
    grouped, single = ActuatorStore(SQLiteStore(":memory:")), ActuatorStore(SQLiteStore(":memory:"))
    for store in (grouped, single):
        store.migrate()
        store.audit(_entries(2))  # lines before: the ids go on from them
    entries = _entries(count)
    grouped.audit(entries)
    for entry in entries:
        single.audit([entry])
    assert grouped.audit_rows() == single.audit_rows()
    assert len(grouped.audit_rows()) == count + 2
    assert [r["event_id"] for r in grouped.audit_rows()[2:]] == [f"e-{i}" for i in range(count)]


def test_a_group_of_lines_is_written_on_sqlite_and_postgresql(db: str) -> None:
    """A decision's buffered notes (more than a group's worth) on either store: the ids go
    on in order and every line reads back as written."""
    store = ActuatorStore(open_store(db))
    store.migrate()
    entries = _entries(AUDIT_GROUP + 3)
    store.audit(entries)
    rows = store.audit_rows()
    assert [r["event_id"] for r in rows] == [f"e-{i}" for i in range(AUDIT_GROUP + 3)]
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    assert rows[AUDIT_GROUP]["manual"] is (AUDIT_GROUP % 7 == 0)

"""The ``store`` and ``retention`` sections of the config: the PostgreSQL store's pool and
coordination, and how long the store keeps history."""

from __future__ import annotations

from pydantic import Field, model_validator

from monitor.fields import Frozen


class StoreConfig(Frozen):
    """The PostgreSQL store (``--db postgresql://...``): its connection pool, and how the
    processes sharing it coordinate. Not used by an SQLite store."""

    pool_min_size: int = Field(default=1, ge=0, le=100,
                               description="connections each process keeps open")
    pool_max_size: int = Field(default=8, ge=1, le=100,
                               description="connections each process opens at most (one more "
                               "listens for other processes' events)")
    pool_timeout_s: float = Field(default=30.0, gt=0,
                                  description="how long a request waits for a free connection")
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300)
    lease_s: float = Field(default=10.0, ge=1, le=600,
                           description="how long a dead process keeps the lead and its "
                           "deliveries before another instance takes them over")
    follow_interval_s: float = Field(default=1.0, gt=0, le=60,
                                     description="how often a process looks for events others "
                                     "stored when no notification arrives")

    @model_validator(mode="after")
    def _pool_sizes(self) -> StoreConfig:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError(f"pool_min_size ({self.pool_min_size}) must not exceed pool_max_size "
                             f"({self.pool_max_size})")
        return self


RETENTION_DEFAULT_DAYS = 400  # runs.accept_past_days: an event older than ingest accepts is of no use
# What each ``<setting>_days`` covers (monitor.app.retention holds the tables' rules).
RETENTION_SETTINGS: dict[str, str] = {
    "events": "events, by run date (whole runs)",
    "dead_letters": "dead letters, by arrival",
    "audit": "the actuator's audit log and finished actions (triggers, recovery plans, "
             "cascades, cleared guards, expectation alerts), data-available completions and "
             "their delivered messages",
    "alerts": "alert history: resolved episodes, what channels were last told, delivered "
              "notifications, expired silences, sent reports",
    "signals": "check results, health probes, scheduler attempts, deploys (each check's and "
               "service's latest kept)",
}


class RetentionConfig(Frozen):
    """How long the store keeps history, and how the ``prune`` job deletes what is older.

    Never shorter than the history phasewatch reads back (``monitor.config`` checks it
    against the start-up replay and the SLO windows), but for dead letters.
    """

    events_days: int = Field(
        default=RETENTION_DEFAULT_DAYS, ge=1, le=36_500,
        description="runs whose run date is older are deleted, whole (a run that received "
        "an event in the last runs.track_days is kept)")
    dead_letters_days: int = Field(default=RETENTION_DEFAULT_DAYS, ge=1, le=36_500,
                                   description="dead letters received longer ago are deleted")
    audit_days: int = Field(
        default=RETENTION_DEFAULT_DAYS, ge=1, le=36_500,
        description="the actuator's audit lines, and its finished actions of older run dates "
        "(kept while runs.accept_past_days accepts their run date: they keep actions "
        "exactly once)")
    alerts_days: int = Field(
        default=RETENTION_DEFAULT_DAYS, ge=1, le=36_500,
        description="alert episodes resolved longer ago (never an open one or one a channel "
        "was not told of), delivered notifications, expired silences, sent reports")
    signals_days: int = Field(
        default=RETENTION_DEFAULT_DAYS, ge=1, le=36_500,
        description="check results, health probes, scheduler attempts and deploys older "
        "than this (each check's and each service's latest is kept)")
    batch_rows: int = Field(
        default=1000, ge=1, le=100_000,
        description="rows deleted per transaction: ingest waits at most for one batch")
    max_rows_per_run: int = Field(
        default=200_000, ge=1,
        description="rows one run of the prune job deletes at most (the next run goes on); "
        "`phasewatch prune` has no cap")

    def days(self, setting: str) -> int:
        """``<setting>_days``."""
        return int(getattr(self, f"{setting}_days"))

"""The ``store`` section of the config: the PostgreSQL store's pool and coordination."""

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

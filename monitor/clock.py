"""Clocks: the only place phasewatch reads wall time (the client's, shared by the server)."""

from phasewatch_client.clock import Clock, FakeClock, SystemClock

__all__ = ["Clock", "FakeClock", "SystemClock"]

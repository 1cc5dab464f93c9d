"""Channel kinds, keyed by the config's ``kind``: an explicit dict, no loading by name."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from alerts.channels.base import Channel, UnavailableChannel
from alerts.config import (
    AlertmanagerChannelConfig,
    ChannelConfig,
    FileChannelConfig,
    LogChannelConfig,
    MemoryChannelConfig,
    PagerDutyChannelConfig,
    SlackBotChannelConfig,
    SlackWebhookChannelConfig,
)

log = logging.getLogger(__name__)

SecretResolver = Callable[[str | None], str | None]
"""Turns an environment-variable name from config into its value (monitor.config.resolve_secret)."""


class MissingSecret(Exception):
    def __init__(self, env_name: str) -> None:
        super().__init__(env_name)
        self.env_name = env_name


def _need(secret: SecretResolver, env_name: str) -> str:
    value = secret(env_name)
    if value is None:
        raise MissingSecret(env_name)
    return value


# Each factory imports its channel's module: a kind's client library (slack_sdk, httpx) loads
# only when a channel of that kind is built (``serve``, ``--send``), never for the in-memory
# channels of the commands that only read (``health-check``, ``report --weekly``).

def _log(cfg: ChannelConfig, secret: SecretResolver) -> Channel:
    from alerts.channels.log import LogChannel

    assert isinstance(cfg, LogChannelConfig)
    return LogChannel(name=cfg.name)


def _file(cfg: ChannelConfig, secret: SecretResolver) -> Channel:
    from alerts.channels.file import FileChannel

    assert isinstance(cfg, FileChannelConfig)
    return FileChannel(cfg.name, cfg.path)


def _memory(cfg: ChannelConfig, secret: SecretResolver) -> Channel:
    from alerts.channels.memory import MemoryChannel

    assert isinstance(cfg, MemoryChannelConfig)
    return MemoryChannel(cfg.name)


def _slack(cfg: ChannelConfig, secret: SecretResolver) -> Channel:
    from alerts.channels.slack import SlackWebhookChannel

    assert isinstance(cfg, SlackWebhookChannelConfig)
    return SlackWebhookChannel(cfg.name, _need(secret, cfg.webhook_url_env), timeout_s=cfg.timeout_s)


def _slack_bot(cfg: ChannelConfig, secret: SecretResolver) -> Channel:
    from alerts.channels.slack import SlackBotChannel

    assert isinstance(cfg, SlackBotChannelConfig)
    return SlackBotChannel(cfg.name, _need(secret, cfg.token_env), cfg.channel,
                           base_url=str(cfg.base_url), timeout_s=cfg.timeout_s)


def _pagerduty(cfg: ChannelConfig, secret: SecretResolver) -> Channel:
    from alerts.channels.pagerduty import PagerDutyChannel

    assert isinstance(cfg, PagerDutyChannelConfig)
    return PagerDutyChannel(cfg.name, _need(secret, cfg.routing_key_env), url=str(cfg.url),
                            source=cfg.source, severity_map={k: v for k, v in cfg.severity_map.items()},
                            timeout_s=cfg.timeout_s)


def _alertmanager(cfg: ChannelConfig, secret: SecretResolver) -> Channel:
    from alerts.channels.alertmanager import AlertmanagerChannel

    assert isinstance(cfg, AlertmanagerChannelConfig)
    token = _need(secret, cfg.token_env) if cfg.token_env else None
    return AlertmanagerChannel(cfg.name, str(cfg.url), token=token, alert_ttl_s=cfg.alert_ttl_s,
                               timeout_s=cfg.timeout_s)


CHANNEL_FACTORIES: dict[str, Callable[[ChannelConfig, SecretResolver], Channel]] = {
    "log": _log,
    "file": _file,
    "memory": _memory,
    "slack": _slack,
    "slack_bot": _slack_bot,
    "pagerduty": _pagerduty,
    "alertmanager": _alertmanager,
}

# Sustained messages per second when the config does not say (the providers' documented limits).
DEFAULT_RATE_PER_S: dict[str, float | None] = {
    "log": None, "file": None, "memory": None, "alertmanager": None,
    "slack": 1.0, "slack_bot": 1.0, "pagerduty": 2.0,
}


def build_channel(cfg: ChannelConfig, secret: SecretResolver) -> Channel:
    """One channel from its config. A missing secret gives a channel that fails (and is
    retried) until the variable is set, so alerts wait in the outbox instead of vanishing."""
    factory = CHANNEL_FACTORIES.get(cfg.kind)
    if factory is None:
        allowed = ", ".join(sorted(CHANNEL_FACTORIES))
        raise ValueError(f"channel kind {cfg.kind!r}; allowed: {allowed}")
    try:
        return factory(cfg, secret)
    except MissingSecret as exc:
        reason = f"environment variable {exc.env_name} is not set"
        log.error("event=alerts.channel_unavailable channel=%s reason=%r", cfg.name, reason)
        return UnavailableChannel(cfg.name, reason)


def build_channels(configs: Sequence[ChannelConfig], secret: SecretResolver) -> dict[str, Channel]:
    """Every configured channel by name, in config order."""
    return {cfg.name: build_channel(cfg, secret) for cfg in configs}

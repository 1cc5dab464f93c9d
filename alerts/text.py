"""A user's text made inert for a channel: what an error message or a summary may carry.

An event's ``error``, a processor name in a summary, a silence comment: any of it may hold
control characters, bidirectional overrides that make ``gnp.exe`` read ``exe.png``, or
Slack's own markup (``<!channel>``, ``<https://evil.example|click>``). Every channel sends
such text only through one of these:

- ``plain(text, limit)``: control, zero-width and bidirectional characters removed (newline
  and tab kept), cut to ``limit`` characters;
- ``mrkdwn(text, limit)``: ``plain`` then Slack's three control characters escaped
  (``&`` ``<`` ``>``), cut without leaving half an entity;
- ``inert(text, limit)``: ``plain`` with ``<`` and ``>`` swapped for angle quotation marks, for
  receivers that render text without escaping it (Alertmanager passes annotations to its
  own Slack, email and webhook receivers as they are).
"""

from __future__ import annotations

import re

# C0 but tab and newline, DEL, C1; zero-width spaces and joiners, marks and bidi controls,
# the word joiner family and the byte-order mark.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)
_HALF_ENTITY = re.compile(r"&[a-z]{0,3}$")
_INERT = str.maketrans({"<": "\u2039", ">": "\u203a"})  # single angle quotation marks
ELLIPSIS = "…"


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in an ellipsis when it was cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + ELLIPSIS


def plain(text: str, limit: int | None = None) -> str:
    """``text`` without invisible characters, at most ``limit`` characters."""
    clean = _INVISIBLE.sub("", text)
    return clean if limit is None else truncate(clean, limit)


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn(text: str, limit: int | None = None) -> str:
    """``text`` safe inside Slack mrkdwn: no mention, link or markup of its own survives."""
    escaped = escape(plain(text))
    return escaped if limit is None else cut_mrkdwn(escaped, limit)


def cut_mrkdwn(text: str, limit: int) -> str:
    """Escaped mrkdwn cut to ``limit`` characters without leaving half an entity (``&l…``)."""
    if len(text) <= limit:
        return text
    return _HALF_ENTITY.sub("", text[: max(limit - 1, 0)]) + ELLIPSIS


def inert(text: str, limit: int | None = None) -> str:
    """``text`` with no markup a receiver could act on (``<`` and ``>`` become angle quotation marks)."""
    return plain(text, limit).translate(_INERT)

"""Remediation playbooks: rerun_missing, quarantine, defer, cascade (``actuator.playbooks``)."""

from monitor.actuator.playbooks.base import ActionRow, Kit, Playbook, PlaybookStore
from monitor.actuator.playbooks.registry import PLAYBOOKS, Playbooks, install_playbooks

__all__ = ["PLAYBOOKS", "ActionRow", "Kit", "Playbook", "PlaybookStore", "Playbooks",
           "install_playbooks"]

"""YAML loading that refuses a key given twice in one mapping (PyYAML keeps the last one)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml
from yaml.nodes import MappingNode

_MERGE = "tag:yaml.org,2002:merge"
# libyaml's parser when PyYAML has it (the PyPI wheels do): a tenth of the pure-Python
# parser's time, which was a third of a cold `phasewatch status`. Same marks, same nodes.
if TYPE_CHECKING:
    SafeLoader = yaml.SafeLoader
else:
    SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping names ``key`` twice: first on ``first_line``, again on ``line`` (1-based)."""

    def __init__(self, key: object, line: int, first_line: int, node: MappingNode) -> None:
        super().__init__(None, None, f"duplicate key {key!r}", node.start_mark)
        self.key, self.line, self.first_line = key, line, first_line


class UniqueKeyLoader(SafeLoader):
    """A SafeLoader whose mappings reject duplicate keys (merge keys ``<<`` may still override)."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[object, int] = {}
            for key_node, _value in node.value:
                if key_node.tag == _MERGE:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # an unhashable key: SafeLoader reports it
                line = key_node.start_mark.line + 1
                if first is not None:
                    raise DuplicateKeyError(key, line, first, node)
                seen[key] = line
        return super().construct_mapping(node, deep)


def load_unique(text: str) -> Any:
    """Parse YAML text like ``yaml.safe_load``, but a duplicate key raises DuplicateKeyError."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader: no arbitrary objects

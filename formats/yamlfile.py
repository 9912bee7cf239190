"""Reading the bench's YAML files (scenarios, gate files): a repeated key is an error with its line.

A leaf of the shared formats: the scenario loader and the gate parser both read through it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from system.errors import UsageError


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys without a word; in a scenario the first one is
    then silently ignored (`seed:` twice), so a repeated key is an error with its line."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (first on line {seen[key].start_mark.line + 1})",
                    key_node.start_mark)
            if isinstance(key, (str, int, float, bool)):
                seen[key] = key_node
        return super().construct_mapping(node, deep)


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UsageError(f"{path}:{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None


def key_lines(path: Path) -> dict[tuple, int]:
    """Each mapping key's path in the YAML file (`("fleet", "sim_clients")`, list items by index) and
    its line, so a schema error can say where an unknown key is. Empty when the file does not compose."""
    try:
        root = yaml.compose(path.read_text(), Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):
        return {}
    lines: dict[tuple, int] = {}

    def walk(node: yaml.Node, where: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                here = where + (key.value,)
                lines[here] = key.start_mark.line + 1
                walk(value, here)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, where + (i,))

    if root is not None:
        walk(root, ())
    return lines

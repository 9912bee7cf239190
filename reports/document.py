"""The report as a small document model, rendered once to HTML and once to Markdown.

Sections are built from data, not from markup, so the two outputs can not drift apart
and escaping happens in exactly one place per output format.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

# A table cell: its text, or (text, css class) to colour a verdict.
Cell = Union[str, tuple[str, str]]


@dataclass(frozen=True)
class Note:
    text: str


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[Cell]]
    caption: str = ""


@dataclass(frozen=True)
class Image:
    """A PNG written beside index.html and embedded in it."""

    name: str
    png: bytes
    alt: str
    overlaps: tuple[tuple[str, str], ...] = ()  # texts drawn over each other (the tests require none)


@dataclass(frozen=True)
class Banner:
    """One run's overall verdict, first on the page: `verdict` is pass, fail or unknown."""

    verdict: str
    headline: str
    detail: str = ""


Block = Union[Note, Table, Image, Banner]


@dataclass
class Section:
    title: str
    anchor: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Document:
    title: str
    subtitle: str
    sections: list[Section] = field(default_factory=list)

    def images(self) -> list[Image]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Image)]


def cell_text(cell: Cell) -> str:
    return cell[0] if isinstance(cell, tuple) else cell

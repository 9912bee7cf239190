"""summary.md: the same document for CI logs and pull requests; images are linked, not embedded."""
from __future__ import annotations

from reports.document import Banner, Document, Image, Note, Section, Table, cell_text

_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]<>|~"})


def to_markdown(doc: Document) -> str:
    lines = [f"# {_escape(doc.title)}", "", _escape(doc.subtitle), ""]
    for section in doc.sections:
        lines += _section(section)
    return "\n".join(lines).rstrip() + "\n"


def _escape(text: str) -> str:
    """Markdown-inert text: no emphasis, links, HTML or table breaks from user strings."""
    return " ".join(str(text).split()).translate(_SPECIAL)


def _section(section: Section) -> list[str]:
    lines = [f"## {_escape(section.title)}", ""]
    for block in section.blocks:
        if isinstance(block, Note):
            lines += [f"_{_escape(block.text)}_", ""]
        elif isinstance(block, Table):
            if block.caption:
                lines += [f"**{_escape(block.caption)}**", ""]
            lines.append("| " + " | ".join(_escape(h) for h in block.headers) + " |")
            lines.append("|" + "---|" * len(block.headers))
            lines += ["| " + " | ".join(_escape(cell_text(c)) for c in row) + " |" for row in block.rows]
            lines.append("")
        elif isinstance(block, Image):
            lines += [f"![{_escape(block.alt)}]({block.name})", ""]
        elif isinstance(block, Banner):
            lines += [f"**{_escape(block.headline)}**" + (f" — {_escape(block.detail)}" if block.detail else ""), ""]
    return lines

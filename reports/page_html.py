"""index.html: one self-contained file (inline CSS, images as data: URIs, no scripts, no network)."""
from __future__ import annotations

import base64
from html import escape

from reports.document import Banner, Document, Image, Note, Section, Table

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:72rem;
padding:0 1rem;color:#1b1f23;background:#fff}
h1{margin-bottom:.2rem}.subtitle{color:#57606a;margin-top:0}
nav ul{display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;list-style:none;padding:0}
table{border-collapse:collapse;margin:.8rem 0;font-size:.92rem}
th,td{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}caption{text-align:left;font-weight:600;padding:.3rem 0}
td.pass{background:#dafbe1}td.fail{background:#ffebe9}td.unknown{background:#fff8c5}
td.prov{font-family:ui-monospace,monospace;font-size:.8rem;max-width:28rem;word-break:break-word}
figure{margin:1rem 0}img{max-width:100%;height:auto;border:1px solid #eaeef2}
p.note{color:#57606a;font-style:italic;margin:.3rem 0}
div.banner{border-radius:6px;padding:.7rem 1rem;margin:.6rem 0;border:2px solid}
div.banner strong{font-size:1.15rem}div.banner p{margin:.3rem 0 0}
div.banner.pass{background:#dafbe1;border-color:#1a7f37}div.banner.fail{background:#ffebe9;border-color:#cf222e}
div.banner.unknown{background:#fff8c5;border-color:#9a6700}
"""


def to_html(doc: Document) -> str:
    nav = "".join(f'<li><a href="#{escape(s.anchor)}">{escape(s.title)}</a></li>' for s in doc.sections)
    body = "\n".join(_section(s) for s in doc.sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{escape(doc.title)}</title><style>{_CSS}</style></head><body>\n"
        f"<h1>{escape(doc.title)}</h1><p class=\"subtitle\">{escape(doc.subtitle)}</p>\n"
        f"<nav><ul>{nav}</ul></nav>\n{body}\n</body></html>\n"
    )


def _section(section: Section) -> str:
    parts = [f'<section id="{escape(section.anchor)}"><h2>{escape(section.title)}</h2>']
    for block in section.blocks:
        if isinstance(block, Note):
            parts.append(f'<p class="note">{escape(block.text)}</p>')
        elif isinstance(block, Table):
            parts.append(_table(block))
        elif isinstance(block, Image):
            parts.append(_image(block))
        elif isinstance(block, Banner):
            detail = f"<p>{escape(block.detail)}</p>" if block.detail else ""
            parts.append(f'<div class="banner {escape(block.verdict)}"><strong>{escape(block.headline)}</strong>'
                         f"{detail}</div>")
    parts.append("</section>")
    return "\n".join(parts)


def _table(table: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    rows = []
    for row in table.rows:
        cells = []
        for cell in row:
            text, cls = cell if isinstance(cell, tuple) else (cell, "")
            attr = f' class="{escape(cls)}"' if cls else ""
            cells.append(f"<td{attr}>{escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    caption = f"<caption>{escape(table.caption)}</caption>" if table.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _image(image: Image) -> str:
    data = base64.b64encode(image.png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{escape(image.alt)}" '
        f'data-file="{escape(image.name)}"><figcaption><a href="{escape(image.name)}">'
        f"{escape(image.name)}</a></figcaption></figure>"
    )

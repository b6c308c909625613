"""The report as one self-contained HTML page: inline CSS, plots as PNG data URIs, no script.

Self-contained because the page gets mailed, attached to tickets and opened from CI artifacts:
nothing may be fetched. Every plot is an ``<img>`` with ``alt`` text and explicit pixel size
(read from the PNG header), so a page whose image failed to decode still shows its place.
"""

from __future__ import annotations

import base64
import html
import struct
from collections.abc import Mapping

from autoscaler.offline.report.document import (
    Block,
    Bullets,
    Code,
    Document,
    Image,
    Paragraph,
    Section,
    Table,
)

_CSS = """
:root { color-scheme: light; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2330;
       max-width: 1060px; margin: 2rem auto; padding: 0 1.25rem; background: #fff; }
h1 { font-size: 1.6rem; margin-bottom: .25rem; }
h2 { font-size: 1.2rem; margin-top: 2.2rem; border-bottom: 1px solid #d8dde6;
     padding-bottom: .2rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem;
           margin: 1rem 0; }
dl.facts dt { font-weight: 600; color: #4a5468; }
dl.facts dd { margin: 0; }
nav a { margin-right: 1rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: 13.5px; }
th, td { border-bottom: 1px solid #e3e7ee; padding: .3rem .6rem; text-align: left;
         vertical-align: top; }
th { background: #f4f6f9; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e7ee; }
figcaption { font-size: 13px; color: #4a5468; }
pre { background: #f6f8fa; border: 1px solid #e3e7ee; padding: .8rem; overflow-x: auto;
      font-size: 12.5px; line-height: 1.4; }
.file { font: 600 12.5px ui-monospace, monospace; color: #4a5468; margin-bottom: -.5rem; }
.warning { background: #fff4e5; border-left: 4px solid #e8a33d; padding: .5rem .8rem; }
footer { margin-top: 3rem; font-size: 12.5px; color: #6a7385; }
"""


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; ValueError when ``data`` is not a PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _block(block: Block, images: Mapping[str, bytes]) -> str:
    if isinstance(block, Paragraph):
        cls = ' class="warning"' if block.warning else ""
        return f"<p{cls}>{_e(block.text)}</p>"
    if isinstance(block, Bullets):
        items = "".join(f"<li>{_e(item)}</li>" for item in block.items)
        return f"<ul>{items}</ul>"
    if isinstance(block, Table):
        head = "".join(f"<th>{_e(h)}</th>" for h in block.header)
        body = "".join(
            "<tr>"
            + "".join(
                f'<td class="num">{_e(c)}</td>' if block.is_numeric(j) else f"<td>{_e(c)}</td>"
                for j, c in enumerate(row)
            )
            + "</tr>"
            for row in block.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if isinstance(block, Image):
        data = images[block.key]
        width, height = png_size(data)
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        return (
            f'<figure id="plot-{_e(block.key)}"><img src="{uri}" alt="{_e(block.alt)}" '
            f'width="{width}" height="{height}"><figcaption>{_e(block.caption)}</figcaption>'
            "</figure>"
        )
    if isinstance(block, Code):
        return (
            f'<div class="file">{_e(block.filename)}</div>'
            f'<pre><code class="language-{_e(block.language)}">{_e(block.text)}</code></pre>'
        )
    raise TypeError(f"unknown block {type(block).__name__}")


def _section(section: Section, images: Mapping[str, bytes]) -> str:
    body = "\n".join(_block(b, images) for b in section.blocks)
    return f'<section id="{_e(section.anchor)}">\n<h2>{_e(section.title)}</h2>\n{body}\n</section>'


def render_html(doc: Document, images: Mapping[str, bytes]) -> str:
    """The page; ``images`` maps each plot name the document shows to its PNG bytes."""
    missing = [img.key for img in doc.images() if img.key not in images]
    if missing:
        raise ValueError(f"no PNG for plot(s) {', '.join(missing)}")
    facts = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in doc.facts)
    nav = "".join(f'<a href="#{_e(s.anchor)}">{_e(s.title)}</a>' for s in doc.sections)
    sections = "\n".join(_section(s, images) for s in doc.sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(doc.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f'<h1>{_e(doc.title)}</h1>\n<dl class="facts">{facts}</dl>\n<nav>{nav}</nav>\n'
        f"{sections}\n"
        "<footer>Generated by llm-autoscaler report. Figures are simulated replays of the "
        "history above; the manifests are validated against the Kubernetes and KEDA schemas "
        "by the project's tests.</footer>\n"
        "</body>\n</html>\n"
    )

"""The report as Markdown (``report.md``): the same document, plots linked as files.

GitHub-flavoured: pipe tables, fenced code. Table cells escape ``|`` and keep to one line, so a
long reason cannot break a row.
"""

from __future__ import annotations

from collections.abc import Mapping

from autoscaler.offline.report.document import (
    Block,
    Bullets,
    Code,
    Document,
    Image,
    Paragraph,
    Table,
)


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _block(block: Block, links: Mapping[str, str]) -> str:
    if isinstance(block, Paragraph):
        return f"> **Note:** {block.text}" if block.warning else block.text
    if isinstance(block, Bullets):
        return "\n".join(f"- {item}" for item in block.items)
    if isinstance(block, Table):
        head = "| " + " | ".join(_cell(h) for h in block.header) + " |"
        rule = (
            "|"
            + "|".join("---:" if block.is_numeric(j) else "---" for j in range(len(block.header)))
            + "|"
        )
        body = ["| " + " | ".join(_cell(c) for c in row) + " |" for row in block.rows]
        return "\n".join([head, rule, *body])
    if isinstance(block, Image):
        return f"![{_cell(block.alt)}]({links[block.key]})\n\n*{block.caption}*"
    if isinstance(block, Code):
        return f"`{block.filename}`:\n\n```{block.language}\n{block.text.rstrip()}\n```"
    raise TypeError(f"unknown block {type(block).__name__}")


def render_markdown(doc: Document, links: Mapping[str, str]) -> str:
    """The summary; ``links`` maps each plot name the document shows to its relative path."""
    missing = [img.key for img in doc.images() if img.key not in links]
    if missing:
        raise ValueError(f"no file for plot(s) {', '.join(missing)}")
    parts = [f"# {doc.title}", "\n".join(f"- **{k}:** {v}" for k, v in doc.facts)]
    for section in doc.sections:
        parts.append(f"## {section.title}")
        parts.extend(_block(b, links) for b in section.blocks)
    return "\n\n".join(parts) + "\n"

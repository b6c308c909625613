"""The HTML page and the Markdown summary lay out one document: escaping, tables, images."""

from __future__ import annotations

import base64
import re
import struct
import zlib

import pytest

from autoscaler.offline.report.document import (
    Bullets,
    Code,
    Document,
    Image,
    Paragraph,
    Section,
    Table,
)
from autoscaler.offline.report.html_page import png_size, render_html
from autoscaler.offline.report.markdown_summary import render_markdown


def tiny_png(width: int = 3, height: int = 2) -> bytes:
    """A valid RGB PNG of the given size (all black)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


DOC = Document(
    title="Capacity report: llm/<chat>",
    facts=(("workload", "llm/<chat>"), ("SLO", "TTFT <= 1 s")),
    sections=(
        Section(
            "Settings",
            "settings",
            (
                Paragraph("no setting met the target & more", warning=True),
                Table(header=("setting", "value"), rows=(("min | floor", "2"),)),
                Bullets(("a <b>", "c")),
            ),
        ),
        Section("Curve", "curve", (Image("curve", 'alt "text"', "the caption"),)),
        Section("YAML", "yaml", (Code("a: <1>\n", "hpa.yaml"),)),
    ),
)


def test_png_size_reads_the_header_and_refuses_other_bytes():
    assert png_size(tiny_png(640, 480)) == (640, 480)
    with pytest.raises(ValueError, match="not a PNG"):
        png_size(b"GIF89a" + b"\x00" * 30)


def test_the_page_escapes_text_and_embeds_the_image_with_its_size():
    png = tiny_png(7, 5)
    page = render_html(DOC, {"curve": png})
    assert "<title>Capacity report: llm/&lt;chat&gt;</title>" in page
    assert "a &lt;b&gt;" in page and "<b>" not in page
    assert "a: &lt;1&gt;" in page
    assert '<p class="warning">no setting met the target &amp; more</p>' in page
    (uri,) = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    assert base64.b64decode(uri) == png
    assert 'alt="alt &quot;text&quot;" width="7" height="5"' in page
    assert '<td class="num">2</td>' in page and "<td>min | floor</td>" in page
    assert page.count('<section id="') == 3 and '<a href="#curve">Curve</a>' in page


def test_a_document_image_without_a_png_is_an_error():
    with pytest.raises(ValueError, match="no PNG for plot"):
        render_html(DOC, {})
    with pytest.raises(ValueError, match="no file for plot"):
        render_markdown(DOC, {})


def test_the_summary_links_plots_and_keeps_table_rows_whole():
    text = render_markdown(DOC, {"curve": "plots/curve.png"})
    assert text.startswith("# Capacity report: llm/<chat>\n\n- **workload:** llm/<chat>")
    assert "| min \\| floor | 2 |" in text
    assert "|---|---:|" in text
    assert '![alt "text"](plots/curve.png)' in text
    assert "> **Note:** no setting met the target & more" in text
    assert "`hpa.yaml`:\n\n```yaml\na: <1>\n```" in text

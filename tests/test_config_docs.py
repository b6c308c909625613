"""The configuration reference agrees with the pydantic models it documents.

``docs/configuration.md`` has one table for ``service`` and one for ``workloads[]`` (nested models
as dotted names, ``ports.https``); ``prefetch.*`` is documented whole in ``docs/prefetch.md``.
Every field of the models must have a row, every row must name a field, and each row's default
must be the model's: a literal default in backticks equals it; ``required`` means no default;
anything else (``unset``, ``half of tick_s``) means the model's default is ``None`` and computed
where it is used.
"""

from __future__ import annotations

import math
import re
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from autoscaler.config import GlobalConfig, PrefetchConfig, WorkloadConfig

DOCS = Path(__file__).resolve().parent.parent / "docs"
ROW = re.compile(r"^\| (`[^|]+`) \| ([^|]+) \|")


def table_rows(text: str, heading: str) -> dict[str, str]:
    """Field name -> default cell of the first table after ``heading``."""
    section = text.split(heading, 1)[1]
    rows: dict[str, str] = {}
    started = False
    for line in section.splitlines():
        m = ROW.match(line)
        if m:
            started = True
            for name in re.findall(r"`([^`]+)`", m.group(1)):
                rows[name] = m.group(2).strip()
        elif started and not line.startswith("|"):
            break
    return rows


def model_fields(model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    """Dotted field name -> default (``PydanticUndefined`` when required); nested models are
    flattened into their own fields; an optional nested model (``GatewayConfig | None``) has its
    own row (unset) and its fields' rows."""
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        default = (
            info.get_default(call_default_factory=True) if info.default_factory else info.default
        )
        if isinstance(default, BaseModel):
            out.update(model_fields(type(default), f"{prefix}{name}."))
            continue
        out[prefix + name] = default
        for arg in typing.get_args(info.annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                out.update(model_fields(arg, f"{prefix}{name}."))
    return out


def documented() -> dict[str, str]:
    config = (DOCS / "configuration.md").read_text()
    rows = {f"service.{k}": v for k, v in table_rows(config, "## `service`").items()}
    rows |= {f"workloads.{k}": v for k, v in table_rows(config, "## `workloads[]`").items()}
    prefetch = table_rows((DOCS / "prefetch.md").read_text(), "| field | default | meaning |")
    rows |= {f"workloads.prefetch.{k}": v for k, v in prefetch.items()}
    return rows


def modelled() -> dict[str, Any]:
    fields = {f"service.{k}": v for k, v in model_fields(GlobalConfig).items()}
    fields |= {f"workloads.{k}": v for k, v in model_fields(WorkloadConfig).items()}
    assert any(k.startswith("workloads.prefetch.") for k in fields)
    assert set(PrefetchConfig.model_fields) <= {k.rpartition(".")[2] for k in fields}
    return fields


def test_every_field_is_documented_and_every_row_is_a_field():
    docs, models = documented(), modelled()
    assert sorted(models.keys() - docs.keys()) == [], "fields without a row"
    assert sorted(docs.keys() - models.keys()) == [], "rows without a field"


def _literal(cell: str) -> str | None:
    """The cell's leading literal: `` `15` `` or a bare number (docs/prefetch.md writes 4)."""
    m = re.match(r"`([^`]*)`|(-?[0-9][0-9.]*)(?:\s|$)", cell)
    if m is None:
        return None
    return m.group(1) if m.group(1) is not None else m.group(2)


def _same(literal: str, default: Any) -> bool:
    if isinstance(default, bool):
        return literal == str(default).lower()
    if isinstance(default, int | float):
        try:
            return math.isclose(float(literal), float(default))
        except ValueError:
            return False
    return literal == str(default)


@pytest.mark.parametrize("field", sorted(modelled()))
def test_each_documented_default_is_the_models(field):
    cell, default = documented()[field], modelled()[field]
    if cell.startswith("required"):
        assert default is PydanticUndefined, f"{field}: documented required, has {default!r}"
        return
    literal = _literal(cell)
    if literal is None or default is None:
        assert default is None and literal is None, f"{field}: {cell!r} vs {default!r}"
        return
    assert _same(literal, default), f"{field}: documented {literal!r}, model {default!r}"


def test_the_check_catches_a_wrong_default_and_a_missing_row():
    assert not _same("16", 15.0) and _same("15", 15.0) and _same("false", False)
    assert _literal("*unset* → `2 × tick_s`") is None and _literal("4") == "4"
    rows = table_rows("## `x`\n\n| f | d |\n| --- | --- |\n| `a`, `b` | `1` | m |\n", "## `x`")
    assert rows == {"a": "`1`", "b": "`1`"}


def test_the_engines_the_docs_and_the_config_accept_are_the_registrys_serving_engines():
    from autoscaler.config import KNOWN_ENGINES
    from autoscaler.engines.registry import GPU_MEMORY, engine_names

    assert set(KNOWN_ENGINES) == set(engine_names()) - {GPU_MEMORY.name}
    row = next(line for line in (DOCS / "configuration.md").read_text().splitlines()
               if line.startswith("| `engine` |"))  # fmt: skip
    listed = row.split("one of ", 1)[1].split(":", 1)[0]
    assert set(re.findall(r"`([^`]+)`", listed)) == set(KNOWN_ENGINES)

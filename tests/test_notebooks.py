"""The notebooks run: each is executed with nbclient on shortened traces, so they never rot.

``LLM_AUTOSCALER_NOTEBOOK_QUICK=1`` makes a notebook cut its traces (the Azure hour to 15-20 min,
ServeGen to its first days) and its model and policy lists; the committed outputs are from a full
run. The kernel is this interpreter: a ``python3`` kernelspec written into a temporary
``JUPYTER_PATH`` runs ``sys.executable``, so a clean ``make test`` needs nothing registered.
Shared traces are required like in the other tests (skip, or fail under REQUIRE_SHARED).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
TRACES = {
    "forecasting.ipynb": ["traces/azure2023_conv.csv", "traces/servegen_aggregate_rate_10min.csv"],
    "policies.ipynb": ["traces/azure2023_conv.csv", "traces/servegen_aggregate_rate_10min.csv"],
}


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
    """A ``python3`` kernelspec for this interpreter, found first on ``JUPYTER_PATH``."""
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (llm-autoscaler test)",
                "language": "python",
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # jupyter_core's own deprecation notice
    monkeypatch.setenv("LLM_AUTOSCALER_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return tmp_path


@pytest.mark.parametrize("name", sorted(TRACES))
def test_notebook_runs_on_shortened_traces(name, kernel_env, shared_file):
    for relative in TRACES[name]:
        shared_file(relative)  # skip (or fail under REQUIRE_SHARED) when a trace is absent
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        book,
        kernel_name="python3",
        timeout=300,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any failure
    outputs = [o for cell in book.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(o.get("text", "").startswith("quick mode") for o in outputs)
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3, f"{name} showed {len(images)} images"


@pytest.mark.parametrize("name", sorted(TRACES))
def test_committed_notebooks_hold_a_full_run(name):
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(book)
    code = [cell for cell in book.cells if cell.cell_type == "code"]
    assert code and all(cell.execution_count for cell in code), "not executed"
    outputs = [o for cell in code for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(o.get("text", "").startswith("full run") for o in outputs), "saved in quick mode"
    assert "shared_path" in "".join(cell.source for cell in code)
    assert os.path.sep not in json.dumps(book.metadata.get("kernelspec", {}))

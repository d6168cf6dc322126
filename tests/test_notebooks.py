"""The example notebooks run top to bottom (nbclient) against the bundled sample store.

Checked: no cell errors; every CommerceQL query cell shows a table; every VISUALIZE cell shows a
Vega-Lite chart JupyterLab can render; Python notebooks run their own assertions.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
VEGA_LITE_V5 = "application/vnd.vegalite.v5+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def widget_shows_a_chart(notebook, model_id: str) -> bool:
    """True when the widget (or a widget inside it) is an Output holding a Vega-Lite chart."""
    state = notebook.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    pending, seen = [model_id], set()
    while pending:
        current = pending.pop()
        if current in seen or current not in state:
            continue
        seen.add(current)
        model = state[current].get("state", {})
        for output in model.get("outputs", []):
            if any(key.startswith("application/vnd.vega") for key in output.get("data", {})):
                return True
        for child in model.get("children", []):
            pending.append(str(child).removeprefix("IPY_MODEL_"))
    return False


@pytest.fixture(scope="module", autouse=True)
def kernel_installed():
    from commerceql_kernel.install import install_kernel_spec

    install_kernel_spec(sys_prefix=True)


def test_there_are_at_least_five_notebooks():
    assert len(NOTEBOOKS) >= 5


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_shows_tables_and_charts(path: Path, sample_store_path, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    # Run in a scratch folder: notebooks may write files (exports) next to themselves.
    client = NotebookClient(notebook, timeout=300, kernel_name=notebook.metadata["kernelspec"]["name"],
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    is_commerceql = notebook.metadata["kernelspec"]["name"] == "commerceql"
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        outputs = cell.get("outputs", [])
        assert not [o for o in outputs if o.output_type == "error"], f"cell {index} failed: {outputs}"
        if is_commerceql and re.search(r"^\s*FROM\b", cell.source, re.IGNORECASE | re.MULTILINE):
            tables = [o for o in outputs if o.output_type == "display_data" and "text/html" in o.data]
            assert tables, f"cell {index} showed no table"
            assert "<table" in tables[0].data["text/html"]
        last_line = cell.source.strip().splitlines()[-1]
        if ("explore(" in last_line or ".widget()" in last_line) and "=" not in last_line.split("(")[0]:
            widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
            assert widgets, f"cell {index} showed no widget"
        elif (is_commerceql or cell.source.lstrip().startswith("%%cql")) and re.search(
            r"\bVISUALIZE\b", cell.source, re.IGNORECASE
        ):
            # VISUALIZE results come with the control bar, whose Output widget holds the chart.
            charts = [o for o in outputs if o.output_type == "display_data" and VEGA_LITE_V5 in o.data]
            bars = [o for o in outputs if WIDGET_VIEW in o.get("data", {})]
            assert charts or bars, f"cell {index} showed no chart"
            for bar in bars:
                assert widget_shows_a_chart(notebook, bar.data[WIDGET_VIEW]["model_id"]), f"cell {index}: no chart in its controls"

"""The notebooks' committed outputs show the code as it is: a cell that prints a function's source with
``inspect.getsource`` must hold that function's current source in its saved output.

The suite executes every notebook (nbmake), which checks that each claim still holds, but it does not write the
outputs back: a reader on GitHub sees the committed ones. When the code a notebook shows changes, this test fails until
the notebook is executed again and committed (``jupyter nbconvert --to notebook --execute --inplace NOTEBOOK``).
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest

import tinygrad_edu
from tinygrad_edu import nn
from tinygrad_edu.nn import functional

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
#: the names the notebooks import the package under
NAMES = {"tg": tinygrad_edu, "F": functional, "nn": nn}
SHOWN = re.compile(r"inspect\.getsource\(((?:tg|F|nn)(?:\.\w+)+)\)")


def _shown_sources() -> list[tuple[str, int, str, str]]:
    """(notebook, cell number, the object's dotted name, the cell's saved text output) for each source shown."""
    found = []
    for path in NOTEBOOKS:
        for number, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
            if cell["cell_type"] != "code":
                continue
            output = "".join("".join(o.get("text", "")) for o in cell.get("outputs", []) if o.get("name") == "stdout")
            for name in SHOWN.findall("".join(cell["source"])):
                found.append((path.name, number, name, output))
    return found


def _resolve(dotted: str):
    first, *rest = dotted.split(".")
    obj = NAMES[first]
    for attribute in rest:
        obj = getattr(obj, attribute)
    return obj


def test_some_notebook_shows_a_source():
    assert any(name == "F.BatchNormFunction.backward" for _, _, name, _ in _shown_sources())


@pytest.mark.parametrize("notebook,cell,name,output", _shown_sources(), ids=lambda v: str(v)[:40])
def test_a_shown_source_is_the_current_one(notebook, cell, name, output):
    source = inspect.getsource(_resolve(name))
    assert source in output, (
        f"{notebook}, cell {cell}: its saved output shows an older source of {name}. Execute the notebook again and "
        f"commit it: jupyter nbconvert --to notebook --execute --inplace notebooks/{notebook}"
    )

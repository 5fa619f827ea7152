"""Keeping committed notebooks clean: outputs of the tiny profile, no machine-specific noise.

`clean_notebook` strips what an execution adds besides results (papermill's per-cell
metadata and timings, the injected-parameters cell, stderr logs, widget state) and
`problems` lists what a committed notebook must not hold; the test suite runs it.

Usage (names as in the notebooks):

    notebook = nbformat.read("notebooks/01_setup_and_baseline.ipynb", as_version=4)
    problems(clean_notebook(notebook))
"""

import re

import nbformat

# Notebook-level metadata a clean notebook keeps.
KEPT_NOTEBOOK_METADATA = ("kernelspec", "language_info")
# Absolute paths of the machine that ran the notebook (home, temp, site-packages, ...).
MACHINE_PATH = re.compile(r"(/home/|/root/|/Users/|/tmp/|/work/|site-packages|[A-Z]:\\\\)")


def clean_notebook(notebook):
    """Return the notebook without execution noise (it is modified in place too)."""
    notebook.cells = [c for c in notebook.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    notebook.metadata = nbformat.NotebookNode(
        {k: v for k, v in notebook.metadata.items() if k in KEPT_NOTEBOOK_METADATA}
    )
    notebook.metadata.get("language_info", {}).pop("version", None)
    for index, cell in enumerate(notebook.cells):
        cell.metadata = nbformat.NotebookNode({k: v for k, v in cell.metadata.items() if k == "tags"})
        cell.pop("id", None)
        if cell.cell_type != "code":
            continue
        cell.outputs = [
            o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")
        ]
        for output in cell.outputs:
            output.pop("metadata", None) if output.get("metadata") == {} else None
            if output.output_type == "display_data":
                output.setdefault("metadata", {})
    notebook.nbformat, notebook.nbformat_minor = 4, 4
    return notebook


def _text_of(output):
    if output.output_type == "stream":
        return output.text
    return "\n".join(str(v) for k, v in output.get("data", {}).items() if k.startswith("text/"))


def problems(notebook, require_outputs=True):
    """List what makes a notebook unfit to commit (empty when clean).

    Args:
        notebook: an `nbformat` notebook.
        require_outputs: whether every code cell must have been executed, in order.
    """
    found = []
    extra = set(notebook.metadata) - set(KEPT_NOTEBOOK_METADATA)
    if extra:
        found.append(f"notebook metadata holds {sorted(extra)}")
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    for number, cell in enumerate(notebook.cells, start=1):
        if set(cell.metadata) - {"tags"}:
            found.append(f"cell {number}: metadata holds {sorted(set(cell.metadata) - {'tags'})}")
        if "injected-parameters" in cell.metadata.get("tags", []):
            found.append(f"cell {number}: a papermill injected-parameters cell")
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                found.append(f"cell {number}: an error output ({output.get('ename')})")
            elif output.output_type == "stream" and output.name == "stderr":
                found.append(f"cell {number}: a stderr log")
            elif MACHINE_PATH.search(_text_of(output)):
                found.append(f"cell {number}: a machine path in {MACHINE_PATH.search(_text_of(output))[0]!r}")
    if not any(c.metadata.get("tags") == ["parameters"] for c in code_cells):
        found.append("no cell tagged 'parameters'")
    if require_outputs:
        counts = [c.execution_count for c in code_cells]
        if counts != list(range(1, len(code_cells) + 1)):
            found.append(f"code cells not executed once, in order: execution counts {counts}")
    return found

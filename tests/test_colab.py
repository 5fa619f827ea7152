"""Colab publishing: one repository URL behind every badge and install cell; the install cell is silent
where the package is installed."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from nbhelpers import colab

ROOT = Path(__file__).resolve().parents[1]
# A throw-away address: the real one is unknown until a maintainer runs `make colab`.
THROWAWAY = "https://github.com/example-owner/example-series"


@pytest.fixture
def checkout_copy(tmp_path):
    """The files `make colab` reads and writes, copied into a temporary folder."""
    for name in ("pyproject.toml", "README.md", "Makefile"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    return tmp_path


def test_the_committed_checkout_has_no_badge_and_every_notebook_the_same_install_cell():
    repository, ref = colab.published_repository(colab.read_pyproject())
    assert colab.disagreements() == []
    if not repository:  # until `make colab` runs
        assert "Open In Colab" not in (ROOT / "README.md").read_text()
        for path in colab.notebook_files():
            assert "Open In Colab" not in path.read_text(), path.name
    cells = {p.name: nbformat.read(p, as_version=4).cells[1].source for p in colab.notebook_files()}
    assert len(cells) == 5 and len(set(cells.values())) == 1


def test_make_colab_writes_one_url_into_pyproject_badges_and_install_cells(checkout_copy):
    untouched = {p.name: [c for c in nbformat.read(p, as_version=4).cells[2:]] for p in colab.notebook_files(checkout_copy)}
    done = subprocess.run(["make", "-s", "-o", ".venv/.installed", "colab", f"REPOSITORY={THROWAWAY}", "REF=v9.9.9",
                           f"BIN={Path(sys.executable).parent}"],
                          cwd=checkout_copy, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "tag that commit v9.9.9" in done.stdout

    pyproject = colab.read_pyproject(checkout_copy)
    assert colab.published_repository(pyproject) == (THROWAWAY, "v9.9.9")
    assert colab.disagreements(checkout_copy) == []
    readme = (checkout_copy / "README.md").read_text()
    for path in colab.notebook_files(checkout_copy):
        notebook = nbformat.read(path, as_version=4)
        url = f"https://colab.research.google.com/github/example-owner/example-series/blob/v9.9.9/notebooks/{path.name}"
        assert notebook.cells[0].source.startswith(f"[![Open In Colab]({colab.BADGE_IMAGE})]({url})\n\n# ")
        assert f"({url})" in readme
        assert f'REPOSITORY, REF = "{THROWAWAY}", "v9.9.9"' in notebook.cells[1].source
        assert notebook.cells[2:] == untouched[path.name]  # the rest of each notebook as it was
    # Every URL of the repository, wherever it is written, is the one in pyproject.toml.
    written = [readme, (checkout_copy / "pyproject.toml").read_text(),
               *(p.read_text() for p in colab.notebook_files(checkout_copy))]
    # (https://github.com/OWNER/NAME is the docs' and messages' placeholder.)
    assert {u for text in written for u in _repository_urls(text)} - {"https://github.com/OWNER/NAME"} == {THROWAWAY}

    # Run again with another address: nothing of the first is left, and still one badge per notebook.
    colab.publish(checkout_copy, "https://github.com/another/fork", "v1.0.0")
    written = (checkout_copy / "README.md").read_text() + (checkout_copy / "notebooks" / "04_finetune_sst2.ipynb").read_text()
    assert "example-owner" not in written
    assert written.count("Open In Colab") == 5 + 1  # the README's five, the notebook's one
    assert colab.disagreements(checkout_copy) == []


def _repository_urls(text):
    import re

    return set(re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", text)) | {
        f"https://github.com/{m}" for m in re.findall(r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)", text)}


def test_a_hand_edited_badge_or_cell_is_reported(checkout_copy):
    colab.publish(checkout_copy, THROWAWAY, "v9.9.9")
    path = checkout_copy / "notebooks" / "03_pretrain_encoder.ipynb"
    notebook = nbformat.read(path, as_version=4)
    notebook.cells[1].source = notebook.cells[1].source.replace("v9.9.9", "v9.9.8")
    nbformat.write(notebook, path)
    readme = checkout_copy / "README.md"
    readme.write_text(readme.read_text().replace("blob/v9.9.9/notebooks/05", "blob/main/notebooks/05"))
    assert colab.disagreements(checkout_copy) == [
        "03_pretrain_encoder.ipynb: the install cell is not nbhelpers.colab's, rendered for pyproject.toml",
        "README.md: the notebook table's badges do not match pyproject.toml",
    ]


@pytest.mark.parametrize("repository, ref, message", [
    ("https://gitlab.com/owner/name", "v1", "expected https://github.com/OWNER/NAME"),
    ("https://github.com/owner/name.git/", "v1", "expected https://github.com/OWNER/NAME"),
    ("https://github.com/owner/name", "v1 x", "expected the tag or commit"),
])
def test_an_address_colab_cannot_open_is_refused_in_one_line(checkout_copy, repository, ref, message):
    before = (checkout_copy / "pyproject.toml").read_text()
    done = subprocess.run([sys.executable, "-m", "nbhelpers.colab", "--root", str(checkout_copy),
                           "--repository", repository, "--ref", ref], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert (checkout_copy / "pyproject.toml").read_text() == before


# Runs a cell in IPython, as a kernel would, and reports every process started (audit events).
CELL_RUNNER = """
import json, sys
processes = []
sys.addaudithook(lambda event, args: processes.append(event) if event in (
    "subprocess.Popen", "os.system", "os.posix_spawn", "os.exec", "os.fork", "os.forkpty", "pty.spawn") else None)
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
shell = InteractiveShell.instance()
with capture_output() as captured:
    result = shell.run_cell(sys.stdin.read())
print(json.dumps({"success": result.success, "stdout": captured.stdout, "processes": processes}))
"""


def _run_cell(source):
    done = subprocess.run([sys.executable, "-c", CELL_RUNNER], input=source, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_install_cell_does_nothing_where_the_package_is_installed():
    cell = nbformat.read(colab.notebook_files()[0], as_version=4).cells[1].source
    assert "%pip install" in cell
    assert _run_cell(cell) == {"success": True, "stdout": "", "processes": []}
    # The same runner does see %pip start pip, so the empty list above means none was started.
    control = _run_cell("%pip --version")
    assert control["success"] and "pip" in control["stdout"] and control["processes"]

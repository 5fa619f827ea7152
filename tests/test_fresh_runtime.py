"""A notebook opened alone in a fresh runtime (Colab, a new JupyterLab): its first cell installs the
package from NBHELPERS_SOURCE, and the notebook runs to the end; where the install changed a
package the session had imported, the cell asks for a restart.

The runtime is a new virtual environment in which `nbhelpers` is not importable but the heavy
dependencies are, as a Colab runtime has TensorFlow and Keras: a `.pth` file puts a folder of
links to this environment's installed packages, less nbhelpers, on its `sys.path`. (A plain path
line in a `.pth` file is only added to `sys.path`; the `.pth` files inside that folder, such as
an editable install's finder, are not run. The links leave out nbhelpers' own metadata too, which
pip would otherwise count as installed.)
"""

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sysconfig
import venv
import zipfile
from pathlib import Path

import nbformat
import papermill
import pytest

from nbhelpers.colab import read_pyproject
from nbhelpers.run import KERNEL_MANAGER, missing_predecessors, notebook_paths

ROOT = Path(__file__).resolve().parents[1]
KERNEL = "fresh-runtime"
# What pip needs to build the nbhelpers wheel from a folder.
SOURCE_FILES = ("pyproject.toml", "README.md", "nbhelpers", "notebooks", "params")


def _setuptools_builds_wheels_offline():
    """True where this environment's setuptools builds this wheel by itself (77 and later: no `wheel`, SPDX license)."""
    try:
        from importlib.metadata import version

        from packaging.version import Version

        return Version(version("setuptools")) >= Version("77")
    except Exception:  # noqa: BLE001 - no setuptools at all
        return False


def _runtime_without_nbhelpers(base):
    """A new venv under `base` that sees this environment's packages but nbhelpers; `(python, its site-packages)`."""
    packages = base / "runtime-packages"
    packages.mkdir()
    site_packages = Path(sysconfig.get_paths()["purelib"])
    for entry in site_packages.iterdir():
        if "nbhelpers" not in entry.name:  # the package, its metadata, its editable finder
            (packages / entry.name).symlink_to(entry)
    runtime = base / "venv"
    venv.create(runtime, with_pip=False)  # pip comes from the linked packages
    python = runtime / "bin" / "python"
    runtime_site = Path(subprocess.check_output(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    (runtime_site / "runtime-packages.pth").write_text(f"{packages}\n")
    return python, runtime_site


@pytest.fixture(scope="module")
def fresh_runtime(tmp_path_factory):
    """`(python, environment variables, site-packages)` of a runtime without nbhelpers, with a Jupyter
    kernel named KERNEL."""
    base = tmp_path_factory.mktemp("fresh_runtime")
    python, runtime_site = _runtime_without_nbhelpers(base)
    kernels = base / "jupyter" / "kernels" / KERNEL
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(
        '{"argv": ["%s", "-m", "ipykernel_launcher", "-f", "{connection_file}"], '
        '"display_name": "fresh runtime", "language": "python"}' % python)

    source = base / "nbhelpers-source"  # the working tree as it is, committed or not
    source.mkdir()
    for name in SOURCE_FILES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, source / name)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # a developer's PYTHONPATH holds nbhelpers
    env.update({"JUPYTER_PATH": str(base / "jupyter"), "NBHELPERS_SOURCE": str(source),
                "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    if _setuptools_builds_wheels_offline():
        env.update({"PIP_NO_BUILD_ISOLATION": "0", "PIP_NO_INDEX": "1"})  # "0" turns isolation off
    # else pip fetches setuptools from the package index to build the wheel (CI reaches it).
    return python, env, runtime_site


def _execute(notebook, env, monkeypatch, **parameters):
    """Run `notebook` under papermill on the fresh runtime's kernel, in `env`; the executed copy's path."""
    for name in set(os.environ) - set(env):
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    output = notebook.with_name(f"executed-{notebook.name}")
    try:
        papermill.execute_notebook(str(notebook), str(output), parameters=parameters, kernel_name=KERNEL,
                                   cwd=str(notebook.parent), progress_bar=False, **KERNEL_MANAGER)
    finally:
        monkeypatch.undo()
    return output


def _install_cell_text(executed):
    # (The first code cell: papermill puts a markdown cell above all others when a cell failed.)
    cell = next(c for c in nbformat.read(executed, as_version=4).cells if c.cell_type == "code")
    assert "%pip install" in cell.source
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_a_notebook_alone_in_a_fresh_runtime_installs_the_package_and_runs(fresh_runtime, tmp_path, monkeypatch):
    python, env, runtime_site = fresh_runtime
    probe = "import importlib.util; print(importlib.util.find_spec('nbhelpers'), importlib.util.find_spec('keras') is not None)"
    # (From another folder than the checkout, whose nbhelpers/ the current folder would import.)
    found = subprocess.run([python, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True).stdout.split()
    assert found == ["None", "True"]
    folder, artifacts = tmp_path / "alone", tmp_path / "artifacts"
    folder.mkdir()
    notebook = folder / "02_mlm_preprocessing.ipynb"
    shutil.copy(ROOT / "notebooks" / notebook.name, notebook)

    # Without a source, the first cell stops with one line saying how to set one.
    with pytest.raises(papermill.PapermillExecutionError, match="Set NBHELPERS_SOURCE to nbhelpers' source"):
        _execute(notebook, {k: v for k, v in env.items() if k != "NBHELPERS_SOURCE"}, monkeypatch,
                 ARTIFACTS_DIR=str(artifacts))

    # With one: the cell installs nbhelpers alone (the runtime's TensorFlow and Keras are kept), and
    # the notebook then names the notebook to run first and the call that runs it.
    with pytest.raises(papermill.PapermillExecutionError) as missing:
        _execute(notebook, env, monkeypatch, ARTIFACTS_DIR=str(artifacts))
    assert "Run notebooks/01_setup_and_baseline.ipynb first" in str(missing.value)
    assert f"run_missing({str(artifacts)!r}, '01_baseline')" in str(missing.value)
    printed = _install_cell_text(notebook.with_name(f"executed-{notebook.name}"))
    print(f"The install cell, first run:\n{printed}")  # shown with pytest -s
    version = read_pyproject()["project"]["version"]
    assert f"Installed: nbhelpers {version} (from {env['NBHELPERS_SOURCE']})" in printed, printed
    assert "No restart needed." in printed
    installed = sorted(p.name.split("-")[0] for p in runtime_site.glob("*.dist-info"))
    assert installed == ["nbhelpers"]

    # That call runs notebook 01 (the wheel's copy) on this runtime; 02 then runs to the end, and
    # its install cell, run a second time, does nothing and prints nothing.
    done = subprocess.run([python, "-c", "import sys; from nbhelpers.run import run_missing; "
                           "print([p.name for p in run_missing(sys.argv[1], '01_baseline')])", str(artifacts)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "['01_setup_and_baseline.ipynb']" in done.stdout
    executed = _execute(notebook, env, monkeypatch, ARTIFACTS_DIR=str(artifacts))
    assert _install_cell_text(executed) == ""
    assert (artifacts / "01_baseline" / "config.json").is_file() and (artifacts / "02_mlm_data" / "config.json").is_file()
    assert sorted(p.name.split("-")[0] for p in runtime_site.glob("*.dist-info")) == ["nbhelpers"]


def test_missing_predecessors_start_at_the_first_gap(tmp_path):
    def produced(*names):
        for name in names:
            (tmp_path / name).mkdir(parents=True, exist_ok=True)
            (tmp_path / name / "config.json").write_text("{}")

    names = lambda paths: [p.name[:2] for p in paths]  # noqa: E731
    assert names(missing_predecessors(tmp_path, "03_encoder")) == ["01", "02", "03"]
    produced("01_baseline", "03_encoder")
    assert names(missing_predecessors(tmp_path, "03_encoder")) == ["02", "03"]  # 03 read the 02 that is gone
    produced("02_mlm_data")
    assert missing_predecessors(tmp_path, "03_encoder") == []
    assert missing_predecessors(tmp_path, "02_mlm_data") == []
    assert all(p.is_file() for p in missing_predecessors(tmp_path, "05_export"))
    assert [p.name for p in missing_predecessors(tmp_path, "05_export")] == [p.name for p in notebook_paths(only=["04", "05"])]
    with pytest.raises(ValueError, match="Unknown artifact '06_x'"):
        missing_predecessors(tmp_path, "06_x")


def _write_wheel(folder, name, version, requires=(), module_source=""):
    """Write a pure-Python wheel of one module by hand (no build tools), as pip installs it."""
    stem, info = f"{name}-{version}", f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": module_source,
             f"{info}/METADATA": "Metadata-Version: 2.1\n" f"Name: {name}\nVersion: {version}\n"
                                 + "".join(f"Requires-Dist: {r}\n" for r in requires),
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b'=').decode()},"
                     f"{len(text.encode())}\n" for path, text in files.items()) + f"{info}/RECORD,,\n"
    path = Path(folder) / f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, text in {**files, f"{info}/RECORD": record}.items():
            wheel.writestr(member, text)
    return path


# Runs the notebooks' install cell in IPython, as a kernel would, after importing `demo_dependency`.
CELL_AFTER_AN_IMPORT = """
import json, sys
import nbformat
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
shell = InteractiveShell.instance()
shell.run_cell("import demo_dependency")
with capture_output() as captured:
    result = shell.run_cell(nbformat.read(sys.argv[1], as_version=4).cells[1].source)
print(json.dumps({"success": result.success, "stdout": captured.stdout}))
"""


def test_the_install_cell_asks_for_a_restart_when_an_imported_package_changed(tmp_path):
    # A stand-in for the package, needing a newer version of a dependency the session already imported.
    python, runtime_site = _runtime_without_nbhelpers(tmp_path)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    old = _write_wheel(wheels, "demo_dependency", "1.0")
    _write_wheel(wheels, "demo_dependency", "2.0")
    stand_in = _write_wheel(wheels, "nbhelpers", "0.0.1", requires=["demo-dependency>=2"])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels), "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "NBHELPERS_SOURCE": str(stand_in)})
    subprocess.run([python, "-m", "pip", "install", "--quiet", str(old)], env=env, cwd=tmp_path, check=True, timeout=300)
    done = subprocess.run([python, "-c", CELL_AFTER_AN_IMPORT, str(ROOT / "notebooks" / "01_setup_and_baseline.ipynb")],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["success"], result
    printed = result["stdout"]
    assert f"Installed: demo-dependency 2.0, nbhelpers 0.0.1 (from {stand_in})" in printed, printed
    assert ("Restart the runtime (Colab: Runtime > Restart session), then run the notebook again: "
            "demo-dependency changed after this session imported it.") in printed, printed

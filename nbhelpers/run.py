"""Run the notebook series in order with papermill, with a parameter profile.

    python -m nbhelpers.run --profile tiny                 # the whole series, CPU-sized
    python -m nbhelpers.run --profile full -p DATA_DIR ~/data
    python -m nbhelpers.run --profile tiny --only 04 05     # re-run two notebooks
    python -m nbhelpers.run --refresh-committed             # re-execute notebooks/ in place

A profile (`params/<name>.yaml`) is a flat mapping of parameter names to values; each notebook
receives the ones its `parameters` cell declares. A name no notebook declares, or a value of the
wrong type, stops the run before any notebook starts. Executed notebooks are written next to
their artifact folders, in the artifacts folder.
"""

import argparse
import os
import sys
import tempfile
import uuid
from pathlib import Path

import nbformat
import papermill
import yaml
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.paths import jupyter_runtime_dir
from traitlets import default

from nbhelpers.artifacts import CONFIG_FILE, PRODUCERS
from nbhelpers.notebook_hygiene import clean_notebook

ROOT = Path(__file__).resolve().parents[1]
# A checkout holds the series beside the package; a wheel installed without one (Colab) carries
# copies of the notebooks and profiles inside the package (pyproject.toml's package-dir).
_IN_CHECKOUT = (ROOT / "notebooks").is_dir()
NOTEBOOKS_DIR = ROOT / "notebooks" if _IN_CHECKOUT else Path(__file__).resolve().parent / "_notebooks"
PROFILES_DIR = ROOT / "params" if _IN_CHECKOUT else Path(__file__).resolve().parent / "_profiles"
# What the notebooks' type annotations may say, and the Python types each accepts.
ACCEPTED_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def notebook_paths(notebooks_dir=NOTEBOOKS_DIR, only=()):
    """The series' notebooks in order, optionally only those whose names start with `only`."""
    paths = sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb"))
    if only:
        unknown = [o for o in only if not any(p.name.startswith(o) for p in paths)]
        if unknown:
            raise SystemExit(f"--only {unknown}: no notebook starts with that; have {[p.name for p in paths]}.")
        paths = [p for p in paths if any(p.name.startswith(o) for o in only)]
    return paths


def load_profile(profile):
    """Read a profile by name (`params/<name>.yaml`) or path; returns a dict."""
    path = Path(profile)
    if not path.suffix:
        path = PROFILES_DIR / f"{profile}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise SystemExit(f"Profile {profile!r} not found ({path}); available: {names}.")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise SystemExit(f"Profile {path} must be a mapping of NAME: value.")
    return values


def split_parameters(paths, values):
    """Give each notebook the values its parameters cell declares; check names and types.

    Raises:
        SystemExit: a name no notebook declares, or a value of the wrong type, with what is allowed.
    """
    declared = {path: papermill.inspect_notebook(str(path)) for path in paths}
    known = {name: spec for specs in declared.values() for name, spec in specs.items()}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise SystemExit(
            f"Unknown parameter(s) {unknown}. The notebooks declare: {', '.join(sorted(known))}."
        )
    for name, value in values.items():
        expected = known[name]["inferred_type_name"]
        accepted = ACCEPTED_TYPES.get(expected, (object,))
        if not isinstance(value, accepted) or (isinstance(value, bool) and expected != "bool"):
            raise SystemExit(
                f"Parameter {name} = {value!r} is a {type(value).__name__}; the notebooks expect "
                f"{expected} ({known[name]['help'] or 'no help given'})."
            )
    return {path: {k: v for k, v in values.items() if k in specs} for path, specs in declared.items()}


def parse_value(text):
    """Read a `-p NAME VALUE` value as YAML, so 3 is an int, 0.5 a float and "x" a str."""
    return yaml.safe_load(text) if text != "" else ""


class LocalSocketKernelManager(AsyncKernelManager):
    """Kernels reached through socket files (ZeroMQ `ipc`) rather than TCP ports.

    A kernel's five TCP ports are picked free and bound a moment later; two kernels starting at
    once on one machine (the test suite's two workers, one under nbval) can pick the same port
    and one dies ("Address already in use", seen once in four runs of `make test`). Socket files
    are named after each kernel's own connection file, so they cannot collide.
    """

    @default("transport")
    def _default_transport(self):
        return "ipc"

    @default("ip")
    def _default_ip(self):
        # Jupyter's default names the sockets "kernel-ipc-N" in the working folder, N the first
        # free number: a race again. Name this kernel's connection file first, and its sockets after it.
        if not self.connection_file:
            runtime = jupyter_runtime_dir()
            os.makedirs(runtime, exist_ok=True)
            self.connection_file = os.path.join(runtime, f"kernel-{uuid.uuid4()}.json")
        return os.path.splitext(self.connection_file)[0] + "-ipc"


# ZeroMQ's ipc transport exists on Linux and macOS; elsewhere keep Jupyter's default (TCP).
KERNEL_MANAGER = {"kernel_manager_class": LocalSocketKernelManager} if os.name == "posix" else {}


def run_series(paths, values, artifacts_dir, kernel_name=None):
    """Execute notebooks in order; each executed copy lands in `artifacts_dir`. Returns their paths."""
    artifacts_dir = Path(artifacts_dir).resolve()
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    if values.get("DATA_DIR"):  # Relative to where the command runs, not to notebooks/.
        values = {**values, "DATA_DIR": str(Path(values["DATA_DIR"]).expanduser().resolve())}
    # Names are checked against the whole series, so a profile works with --only too.
    series = notebook_paths(Path(paths[0]).parent) if paths else []
    per_notebook = split_parameters(series, {**values, "ARTIFACTS_DIR": str(artifacts_dir)})
    executed = []
    for path in paths:
        output = artifacts_dir / path.name
        print(f"== {path.name} -> {output}", flush=True)
        papermill.execute_notebook(
            str(path),
            str(output),
            parameters=per_notebook[path],
            cwd=str(path.parent),
            kernel_name=kernel_name,
            progress_bar=False,
            **KERNEL_MANAGER,
        )
        executed.append(output)
    return executed


def refresh_committed(paths, kernel_name=None):
    """Re-execute the committed notebooks with their defaults (the tiny profile) and clean them."""
    with tempfile.TemporaryDirectory() as scratch:
        for path in paths:
            output = Path(scratch) / path.name
            print(f"== refreshing {path.name}", flush=True)
            papermill.execute_notebook(
                str(path), str(output), cwd=str(path.parent), kernel_name=kernel_name, progress_bar=False,
                **KERNEL_MANAGER,
            )
            notebook = clean_notebook(nbformat.read(output, as_version=4))
            nbformat.write(notebook, path)


def missing_predecessors(artifacts_dir, name, notebooks_dir=NOTEBOOKS_DIR):
    """The notebooks to run so that the artifact `name` exists: from the first missing one up to its producer.

    Args:
        artifacts_dir: the artifacts folder.
        name: an artifact folder name, one of `nbhelpers.artifacts.PRODUCERS`.
        notebooks_dir: where the series' notebooks are.

    Returns:
        Notebook paths in order; empty when `name` and everything before it are in place.
    """
    if name not in PRODUCERS:
        raise ValueError(f"Unknown artifact {name!r}; expected one of {sorted(PRODUCERS)}.")
    names = list(PRODUCERS)[: list(PRODUCERS).index(name) + 1]
    present = [(Path(artifacts_dir) / n / CONFIG_FILE).is_file() for n in names]
    # A re-run predecessor changes what every later one read, so all after the first gap run again.
    first_missing = present.index(False) if False in present else len(names)
    return [Path(notebooks_dir) / PRODUCERS[n] for n in names[first_missing:]]


def run_missing(artifacts_dir, name, profile="tiny"):
    """Run, with a profile, the notebooks that the artifact `name` needs and that have not run.

    For a notebook opened alone (Colab): `run_missing(ARTIFACTS_DIR, "03_encoder")` in a cell
    before notebook 04's imports. Executed copies land in `artifacts_dir`, beside the artifacts.

    Args:
        artifacts_dir: the artifacts folder (the notebook's `ARTIFACTS_DIR`).
        name: the artifact needed, one of `nbhelpers.artifacts.PRODUCERS`.
        profile: a profile name in params/ (default: tiny, the notebooks' defaults).

    Returns:
        The executed notebooks' paths (empty when nothing was missing).
    """
    paths = missing_predecessors(artifacts_dir, name)
    if not paths:
        print(f"{name} and the artifacts before it are in place in {artifacts_dir}; nothing to run.")
        return []
    return run_series(paths, load_profile(profile), artifacts_dir)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="tiny", help="a profile name in params/ or a YAML path")
    parser.add_argument("--artifacts", default=str(ROOT / "artifacts"), help="the artifacts folder")
    parser.add_argument("--only", nargs="+", default=(), help="notebook number prefixes, e.g. 03 04")
    parser.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="override one parameter (repeatable)")
    parser.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebooks')")
    parser.add_argument("--refresh-committed", action="store_true",
                        help="re-execute notebooks/ in place with their defaults and clean them")
    args = parser.parse_args(argv)
    paths = notebook_paths(only=args.only)
    if args.refresh_committed:
        refresh_committed(paths, kernel_name=args.kernel)
        return 0
    values = {**load_profile(args.profile), **{name: parse_value(v) for name, v in args.p}}
    run_series(paths, values, args.artifacts, kernel_name=args.kernel)
    print(f"Done: executed notebooks and artifacts are in {args.artifacts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

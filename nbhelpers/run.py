"""Run the notebook series in order with papermill, with a parameter profile.

    python -m nbhelpers.run --profile tiny                 # the whole series, CPU-sized
    python -m nbhelpers.run --profile full -p DATA_DIR ~/data
    python -m nbhelpers.run --profile tiny --only 04 05     # re-run two notebooks
    python -m nbhelpers.run --refresh-committed             # re-execute notebooks/ in place

A profile (`params/<name>.yaml`) is a flat mapping of parameter names to values; each notebook
receives the ones its `parameters` cell declares. A name no notebook declares (with the near
one it may have meant), or a value of the wrong type, stops the run before any notebook starts.
Executed notebooks are written next to their artifact folders, in the artifacts folder. The
notebooks' kernels inherit this command's environment (KERAS_BACKEND, and TF_CONFIG or Keras'
KERAS_DISTRIBUTION_* variables for DISTRIBUTION multi_worker); on a worker that is not the
chief of such a job, the executed notebooks go to a temporary folder, named on the console,
and the notebooks write their artifacts there too (`nbhelpers.artifacts.worker_folder`).

The console shows which notebook and cell runs and what the notebook prints (training prints
its progress with the time left, at least every minute); `--quiet` shows only errors. One run
at a time writes an artifacts folder (a second stops at once, naming the first). An error is one
line; `--debug` shows its traceback.
"""

import argparse
import difflib
import logging
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import nbformat
import papermill
import yaml
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.paths import jupyter_runtime_dir
from traitlets import default

from nbhelpers.artifacts import (
    CONFIG_FILE, LOCK_OWNER_ENV, PRODUCERS, chief_or_alone, lock_artifacts, unlock_artifacts,
)
from nbhelpers.cli import DEBUG_HELP, UserError, run_command
from nbhelpers.notebook_hygiene import clean_notebook
from nbhelpers.params import read_yaml
from nbhelpers.progress import PROGRESS_SECONDS, QUIET_ENV, format_duration

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
            raise UserError(f"--only {unknown}: no notebook starts with that; have {[p.name for p in paths]}.")
        paths = [p for p in paths if any(p.name.startswith(o) for o in only)]
    return paths


def load_profile(profile):
    """Read a profile by name (`params/<name>.yaml`) or path; returns a dict."""
    path = Path(profile)
    if not path.suffix:
        path = PROFILES_DIR / f"{profile}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise UserError(f"Profile {profile!r} not found ({path}); available: {names}.")
    try:
        values = read_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"Profile {path} is not valid YAML: {_yaml_problem(exc)}.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"Cannot read the profile {path}: {getattr(exc, 'strerror', None) or exc}.") from None
    if not isinstance(values, dict):
        raise UserError(f"Profile {path} must be a mapping of NAME: value.")
    return values


def _yaml_problem(exc):
    """Where and what a YAML error is, in one line ("line 3, column 7: could not find expected ':'")."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    started = f" ({context} on line {context_mark.line + 1})" if context and context_mark is not None else ""
    return where + " ".join(str(getattr(exc, "problem", None) or exc).split()) + started


def _near_misses(unknown, known):
    """`NAME (did you mean KNOWN?)` for each unknown name with a close known one, difflib's way."""
    return [f"{name} (did you mean {close[0]}?)" if (close := difflib.get_close_matches(name, known, n=1)) else name
            for name in unknown]


def split_parameters(paths, values):
    """Give each notebook the values its parameters cell declares; check names and types.

    Raises:
        SystemExit: a name no notebook declares, or a value of the wrong type, with what is allowed.
    """
    declared = {path: papermill.inspect_notebook(str(path)) for path in paths}
    known = {name: spec for specs in declared.values() for name, spec in specs.items()}
    unknown = sorted(set(values) - set(known))
    if unknown:
        guesses = _near_misses(unknown, sorted(known))
        if all("did you mean" in guess for guess in guesses):
            raise UserError(f"Unknown parameter {', '.join(guesses)}.")
        raise UserError(
            f"Unknown parameter(s) {unknown}. The notebooks declare: {', '.join(sorted(known))}."
        )
    for name, value in values.items():
        expected = known[name]["inferred_type_name"]
        accepted = ACCEPTED_TYPES.get(expected, (object,))
        if not isinstance(value, accepted) or (isinstance(value, bool) and expected != "bool"):
            raise UserError(
                f"Parameter {name} = {value!r} is a {type(value).__name__}; the notebooks expect "
                f"{expected} ({known[name]['help'] or 'no help given'})."
            )
    return {path: {k: v for k, v in values.items() if k in specs} for path, specs in declared.items()}


def parse_value(text, name="VALUE"):
    """Read a `-p NAME VALUE` value as YAML, so 3 is an int, 0.5 and 1e-4 floats and "x" a str."""
    try:
        return read_yaml(text) if text != "" else ""
    except yaml.YAMLError as exc:
        raise UserError(f"-p {name} {text!r}: not a valid value ({_yaml_problem(exc)}); quote a string.") from None


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


class ConsoleProgress(logging.Handler):
    """Shows a running notebook on the console: each code cell as it starts, what the notebook
    prints (papermill's `log_output`), and a line after every `heartbeat` seconds of silence.

    Attach it to papermill's logger for one notebook; `close()` stops the heartbeat.

    Args:
        notebook: the notebook's path (for its name and its cells' types).
        parameterized: whether papermill adds an injected-parameters cell after the parameters cell.
        heartbeat: seconds of silence after which a "still running" line is printed.
        stream: where the lines go (default stdout).
    """

    def __init__(self, notebook, parameterized, heartbeat=PROGRESS_SECONDS, stream=None):
        super().__init__(logging.INFO)
        self.name = Path(notebook).name
        cells = nbformat.read(notebook, as_version=4).cells
        self.kinds = [c.cell_type for c in cells]
        tagged = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
        if parameterized:  # papermill inserts its cell after the parameters cell (or first)
            self.kinds.insert(tagged[0] + 1 if tagged else 0, "code")
        self.code_cells = [i for i, kind in enumerate(self.kinds) if kind == "code"]
        self.stream = stream or sys.stdout
        self.cell = None
        self.started = self.last_line = time.monotonic()
        self.heartbeat = heartbeat
        self.stopped = threading.Event()
        self.beats = threading.Thread(target=self._beat, daemon=True)
        self.beats.start()

    def _write(self, text):
        self.stream.write(text if text.endswith("\n") else text + "\n")
        self.stream.flush()
        self.last_line = time.monotonic()

    def _beat(self):
        while not self.stopped.wait(min(5, self.heartbeat)):
            if time.monotonic() - self.last_line >= self.heartbeat and self.cell is not None:
                self._write(f"-- {self.name}: still running cell {self.cell}, "
                            f"{format_duration(time.monotonic() - self.started)} since the notebook started")

    def emit(self, record):
        message = record.getMessage()
        if record.funcName == "cell_start":  # "Executing Cell 7-----"
            index = int("".join(ch for ch in message if ch.isdigit()) or 0) - 1
            if 0 <= index < len(self.kinds) and self.kinds[index] == "code":
                self.cell = self.code_cells.index(index) + 1
                self._write(f"-- {self.name}: cell {self.cell} of {len(self.code_cells)}")
        elif record.funcName == "log_output_message" and message.strip():
            self._write(message)

    def close(self):
        self.stopped.set()
        super().close()


def run_series(paths, values, artifacts_dir, kernel_name=None, quiet=False):
    """Execute notebooks in order; each executed copy lands in `artifacts_dir`. Returns their paths.

    Holds the lock of `artifacts_dir` for the whole series (its kernels write under it).

    Args:
        paths: the notebooks, in order.
        values: parameter values (checked against the whole series' parameters cells).
        artifacts_dir: the artifacts folder.
        kernel_name: a Jupyter kernel name, or None for the notebooks' own.
        quiet: show nothing on the console but errors (and tell the kernels so: no progress lines).

    Raises:
        ArtifactsLocked: another run is writing into `artifacts_dir`.
        UserError: DATA_DIR is not a folder, or a parameter is unknown or of the wrong type.
        papermill.PapermillExecutionError: a notebook failed; it names the cell and error.
    """
    artifacts_dir = Path(artifacts_dir).resolve()
    if artifacts_dir.exists() and not artifacts_dir.is_dir():
        raise UserError(f"--artifacts {artifacts_dir} is a file, not a folder: pass the folder to write into.")
    if values.get("DATA_DIR"):  # Relative to where the command runs, not to notebooks/.
        data_dir = Path(values["DATA_DIR"]).expanduser().resolve()
        if not data_dir.is_dir():
            raise UserError(f"DATA_DIR {values['DATA_DIR']} {'is not a folder' if data_dir.exists() else 'does not exist'}: "
                            "pass a data folder (layout in nbhelpers/data.py; `python -m nbhelpers.acquire` fills one), "
                            'or "" for the embedded synthetic data.')
        values = {**values, "DATA_DIR": str(data_dir)}
    # Names are checked against the whole series, so a profile works with --only too.
    series = notebook_paths(Path(paths[0]).parent) if paths else []
    per_notebook = split_parameters(series, {**values, "ARTIFACTS_DIR": str(artifacts_dir)})
    # The notebooks still read their predecessors from artifacts_dir.
    output_dir = artifacts_dir if chief_or_alone() else Path(tempfile.mkdtemp(prefix="nbhelpers-worker-notebooks-"))
    if output_dir != artifacts_dir:
        print(f"Not the chief of this multi-worker job: the executed notebooks go to {output_dir} "
              f"(the chief writes the artifacts); {artifacts_dir} is only read.", flush=True)
    took_lock = lock_artifacts(output_dir)
    saved_environment = {name: os.environ.get(name) for name in (LOCK_OWNER_ENV, QUIET_ENV)}
    # The kernels inherit these: they write under this process's lock, and stay quiet with us.
    os.environ[LOCK_OWNER_ENV] = ",".join(filter(None, [os.environ.get(LOCK_OWNER_ENV), str(os.getpid())]))
    if quiet:
        os.environ[QUIET_ENV] = "1"
    papermill_logger = logging.getLogger("papermill")
    executed = []
    try:
        for path in paths:
            output = output_dir / path.name
            progress = None if quiet else ConsoleProgress(path, parameterized=bool(per_notebook[path]))
            if progress:
                print(f"== {path.name} -> {output}", flush=True)
                papermill_logger.addHandler(progress)
            # Papermill logs cell starts and the notebook's output at INFO; only our handler shows them.
            level, propagate = papermill_logger.level, papermill_logger.propagate
            papermill_logger.setLevel(logging.INFO)
            papermill_logger.propagate = False
            try:
                papermill.execute_notebook(
                    str(path),
                    str(output),
                    parameters=per_notebook[path],
                    cwd=str(path.parent),
                    kernel_name=kernel_name,
                    progress_bar=False,
                    log_output=not quiet,
                    **KERNEL_MANAGER,
                )
            except papermill.PapermillExecutionError as error:
                error.notebook, error.output = path, output  # for the one-line report
                raise
            finally:
                papermill_logger.setLevel(level)
                papermill_logger.propagate = propagate
                if progress:
                    papermill_logger.removeHandler(progress)
                    progress.close()
            executed.append(output)
    finally:
        for name, value in saved_environment.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
        if took_lock:
            unlock_artifacts(output_dir)
    return executed


def _failure_line(error):
    """A notebook's failure in one line: the notebook, the cell, the error, where the traceback is.

    Args:
        error: a `PapermillExecutionError` from `run_series` (which adds `notebook` and `output`).
    """
    evalue = " ".join(str(error.evalue).split())
    return (f"{error.notebook.name} stopped at cell {error.exec_count}: {error.ename}: {evalue} "
            f"(the executed notebook, with the traceback: {error.output})")


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
    parser = argparse.ArgumentParser(prog="python -m nbhelpers.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="tiny", help="a profile name in params/ or a YAML path")
    parser.add_argument("--artifacts", default=str(ROOT / "artifacts"), help="the artifacts folder")
    parser.add_argument("--only", nargs="+", default=(), help="notebook number prefixes, e.g. 03 04")
    parser.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="override one parameter (repeatable)")
    parser.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebooks')")
    parser.add_argument("--refresh-committed", action="store_true",
                        help="re-execute notebooks/ in place with their defaults and clean them")
    parser.add_argument("--quiet", action="store_true", help="show only errors (no cells, output or progress)")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    args = parser.parse_args(argv)
    paths = notebook_paths(only=args.only)
    if args.refresh_committed:
        refresh_committed(paths, kernel_name=args.kernel)
        return 0
    values = {**load_profile(args.profile), **{name: parse_value(v, name) for name, v in args.p}}
    try:
        executed = run_series(paths, values, args.artifacts, kernel_name=args.kernel, quiet=args.quiet)
    except papermill.PapermillExecutionError as error:
        if args.debug:
            raise
        raise UserError(_failure_line(error)) from None
    if not args.quiet:
        if executed and executed[0].parent != Path(args.artifacts).resolve():  # a worker, not the chief
            print(f"Done: executed notebooks are in {executed[0].parent}; the chief writes the artifacts")
        else:
            print(f"Done: executed notebooks and artifacts are in {args.artifacts}")
    return 0 if len(executed) == len(paths) else 1


if __name__ == "__main__":
    sys.exit(run_command(main, "nbhelpers.run"))

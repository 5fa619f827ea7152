"""Artifact folders: each notebook writes exactly one, atomically, and reads its predecessor's.

A notebook stages its outputs in a hidden temporary folder and publishes it with one rename
once everything is written, so a crash or an interrupt never leaves a half-written artifact
where the next notebook would read it. Publishing writes a manifest last (every file's size
and SHA-256, and the versions of the libraries that wrote them); `require_artifact` checks it,
so a file changed, truncated or deleted since is refused with the notebook to re-run.

In a multi-worker job (`DISTRIBUTION` `multi_worker`) only the chief writes there: the other
workers stage, publish and keep their training state in a temporary folder of their own
(`worker_folder`), outside the artifacts folder, removed when the process ends.

One run at a time writes an artifacts folder: `stage_artifact` takes a lock file (`.lock`,
holding the writer's process id and start time) that a second run finds and stops at, with a
message naming the first; a lock whose process is gone is taken over.

Example:

>>> staging = stage_artifact("artifacts", "01_baseline")
>>> write_json(staging / "config.json", {"dev_accuracy": 0.8})
>>> folder = publish_artifact(staging)
>>> read_json(require_artifact("artifacts", "01_baseline") / "config.json")
{'dev_accuracy': 0.8}
"""

import atexit
import errno
import functools
import hashlib
import json
import os
import platform
import shutil
import socket
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

# Artifact folder -> the notebook that writes it (named in errors).
PRODUCERS = {
    "01_baseline": "01_setup_and_baseline.ipynb",
    "02_mlm_data": "02_mlm_preprocessing.ipynb",
    "03_encoder": "03_pretrain_encoder.ipynb",
    "04_classifier": "04_finetune_sst2.ipynb",
    "05_export": "05_export_raw_text.ipynb",
}
# Every published artifact holds this file; its absence means the folder is not ours or incomplete.
CONFIG_FILE = "config.json"
# Written last when publishing: each file's size and SHA-256, and the library versions.
MANIFEST_FILE = "manifest.json"
# The artifacts folder's lock file, held by the run that writes into it.
LOCK_FILE = ".lock"
# A run that holds the lock for its child processes (the runner for its Jupyter kernels) names
# itself here; a process whose environment names the lock's owner writes under that lock.
LOCK_OWNER_ENV = "NBHELPERS_LOCK_OWNER"
# The packages whose versions a manifest records (a reader warns when they differ).
RECORDED_PACKAGES = ("tensorflow", "keras", "keras-hub")
HASH_CHUNK = 1 << 20


class ArtifactError(RuntimeError):
    """An input artifact is missing, incomplete or damaged, or an artifact cannot be written."""


class ArtifactsLocked(ArtifactError):
    """Another live process is writing into the artifacts folder."""


def _number(name):
    """The notebook number of an artifact ("03" for "03_encoder")."""
    return name.split("_", 1)[0]


def _rerun(name):
    return f"re-run notebook {_number(name)} (notebooks/{PRODUCERS[name]})"


def _default_mode(directory=False):
    """The mode the user's umask gives a new file or folder (as `open` and `mkdir` would)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


# ---------------------------------------------------------------------------------------------
# The lock on an artifacts folder


def _process_alive(pid):
    """Whether process `pid` exists on this machine (a zombie counts as gone where we can tell)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    try:  # Linux: a finished child not yet reaped by its parent is a zombie, not a writer
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def read_lock(root):
    """The lock of the artifacts folder `root` as a dict (`pid`, `started`, `host`, `command`), or `None`."""
    try:
        return json.loads((Path(root) / LOCK_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None


def _lock_is_ours(lock):
    owners = {os.getpid(), *(int(p) for p in os.environ.get(LOCK_OWNER_ENV, "").split(",") if p.isdigit())}
    return lock is not None and lock.get("host") == socket.gethostname() and lock.get("pid") in owners


def _lock_is_stale(lock):
    """Whether a lock's process is gone (an unreadable lock, or one without a process id, counts as gone)."""
    if lock is None or not isinstance(lock.get("pid"), int) or lock["pid"] <= 0:
        return True
    return lock.get("host") == socket.gethostname() and not _process_alive(lock["pid"])


def _describe_lock(root, lock):
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(lock.get("started", 0)))
    return (f"{root} is being written by another run: process {lock.get('pid')} on {lock.get('host')} "
            f"({lock.get('command') or 'unknown command'}), started {started}. Wait for it to finish "
            f"or stop it, or use another artifacts folder (the lock file is {Path(root) / LOCK_FILE}).")


def _this_command():
    """This process as a user would recognise it in a lock message."""
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    if "ipykernel" in program.name:
        return "a Jupyter kernel: a notebook open in JupyterLab, or a run's notebook"
    if program.parent.name == "nbhelpers":  # python -m nbhelpers.run ...
        program = Path(f"python -m nbhelpers.{program.stem}")
    elif program.name == "-c":
        program = Path("python -c")
    return " ".join([str(program), *sys.argv[1:]])[:200]


def lock_artifacts(root):
    """Take the lock of the artifacts folder `root` for this process; return whether it was taken now.

    Returns False when this process (or the run that started it, named in `LOCK_OWNER_ENV`)
    already holds it. A lock whose process has ended is taken over.

    Raises:
        ArtifactsLocked: another live process holds the lock; the message names it.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_FILE
    record = {"pid": os.getpid(), "started": time.time(), "host": socket.gethostname(), "command": _this_command()}
    for _ in range(3):
        lock = read_lock(root)
        if _lock_is_ours(lock):
            return False
        if path.exists() and not _lock_is_stale(lock):
            raise ArtifactsLocked(_describe_lock(root, lock))
        if path.exists():  # its process is gone: take it over, unless another process just did
            if read_lock(root) != lock:
                continue
            path.unlink(missing_ok=True)
        # Written in full under a temporary name, then linked into place: `link` fails if another
        # process created the lock meanwhile, so exactly one of two racing processes gets it.
        fd, tmp = tempfile.mkstemp(prefix=".lock.", dir=root)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            continue
        except OSError:  # a file system without hard links (some network mounts): create it exclusively
            try:
                with open(path, "x") as f:
                    json.dump(record, f)
                return True
            except FileExistsError:
                continue
        finally:
            os.unlink(tmp)
    raise ArtifactsLocked(_describe_lock(root, read_lock(root) or {}))


def unlock_artifacts(root):
    """Remove the lock of `root` if this very process holds it."""
    lock = read_lock(root)
    if lock is not None and lock.get("pid") == os.getpid() and lock.get("host") == socket.gethostname():
        (Path(root) / LOCK_FILE).unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Staging and publishing


@functools.cache
def worker_folder():
    """A non-chief worker's private stand-in for the artifacts folder, removed when the process ends.

    Such a worker runs the same cells as the chief, so it writes the same files; they go here.
    """
    folder = Path(tempfile.mkdtemp(prefix="nbhelpers-worker-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    print(f"Not the chief of this multi-worker job: this worker's artifacts and training state go to {folder}, "
          "removed at exit.", file=sys.stderr)
    return folder


# The variables that describe a multi-worker job (read by nbhelpers.distribution); where none is
# set, this process is nobody's worker and Keras need not be imported to know it.
JOB_ENV = ("TF_CONFIG", "KERAS_DISTRIBUTION_PROCESS_ID")


def chief_or_alone():
    """Whether this process may write an artifacts folder: not a non-chief worker of a multi-worker job."""
    if not any(os.environ.get(name, "").strip() for name in JOB_ENV):
        return True
    from nbhelpers.distribution import is_chief

    return is_chief()


def _writable_root(root):
    """`root`, or this worker's own folder where it is not the chief of a multi-worker job."""
    return Path(root) if chief_or_alone() else worker_folder()


def _staging_pid(folder):
    """The process id in a staging folder's name (`.NAME.staging-PID-XXXX`), or None (older names)."""
    field = folder.name.split(".staging-", 1)[1].split("-", 1)[0]
    return int(field) if field.isdigit() else None


def stage_artifact(root, name):
    """Create an empty temporary folder beside `root/name` to write an artifact into.

    Takes the artifacts folder's lock (see `lock_artifacts`) until `publish_artifact`, and
    removes staging folders left by interrupted runs (never those of a live process). A worker
    that is not the chief of a multi-worker job stages in its `worker_folder` instead, which
    `publish_artifact` then publishes into: nothing of it reaches `root`.

    Args:
        root: the artifacts folder (created if needed).
        name: the artifact's folder name, one of `PRODUCERS`.

    Returns:
        The staging folder's `Path`; pass it to `publish_artifact` when everything is written.

    Raises:
        ArtifactsLocked: another run is writing into `root`.
        ArtifactError: `root` cannot be written (read-only, full, no permission).
    """
    if name not in PRODUCERS:
        raise ValueError(f"Unknown artifact {name!r}; expected one of {sorted(PRODUCERS)}.")
    root = _writable_root(root)
    try:
        lock_artifacts(root)
        for leftover in root.glob(f".{name}.staging-*"):  # from a run that was interrupted
            pid = _staging_pid(leftover)
            if pid is None or pid == os.getpid() or not _process_alive(pid):
                shutil.rmtree(leftover, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.staging-{os.getpid()}-", dir=root))
        staging.chmod(_default_mode(directory=True))  # mkdtemp makes it 0700; publish what umask gives
    except ArtifactsLocked:
        raise
    except OSError as exc:
        raise ArtifactError(f"Cannot write the artifact {name} into {root}: {exc.strerror or exc}.") from exc
    return staging


def file_digest(path):
    """The SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def library_versions():
    """The versions of Python and of `RECORDED_PACKAGES` installed here (None where one is not)."""
    versions = {"python": platform.python_version()}
    for package in RECORDED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def _listed_files(folder):
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name != MANIFEST_FILE)


def write_manifest(folder, name):
    """Write `folder/manifest.json`: every file's size and SHA-256, the library versions, the notebook."""
    files = {p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size, "sha256": file_digest(p)}
             for p in _listed_files(folder)}
    write_json(Path(folder) / MANIFEST_FILE, {
        "artifact": name, "notebook": PRODUCERS[name], "files": files, "versions": library_versions(),
        "published": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })


def publish_artifact(staging):
    """Move a staging folder into place as `root/name`, replacing an older artifact.

    The manifest is written last, into the staging folder; then the replacement is two renames:
    the old folder is moved aside first and removed only after the new one is in place, so at
    every moment `root/name` is either the old or the new artifact. Where publishing fails (a
    full disk, a read-only folder), the staging folder is removed and the old artifact stays.

    Args:
        staging: a folder returned by `stage_artifact`.

    Returns:
        The published folder's `Path`.
    """
    staging = Path(staging)
    name = staging.name[1:].split(".staging-")[0]
    if not (staging / CONFIG_FILE).is_file():
        raise ArtifactError(f"Refusing to publish {name}: it has no {CONFIG_FILE}.")
    root = staging.parent
    final = root / name
    retired = root / f".{name}.retired"
    try:
        write_manifest(staging, name)
        shutil.rmtree(retired, ignore_errors=True)
        if final.exists():
            os.replace(final, retired)
        os.replace(staging, final)
    except OSError as exc:
        if retired.exists() and not final.exists():
            os.replace(retired, final)  # put the previous artifact back
        shutil.rmtree(staging, ignore_errors=True)
        unlock_artifacts(root)  # nothing of ours is left to protect
        reason = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise ArtifactError(
            f"Could not publish {name} into {root}: {reason}. The previous {name} (if any) is unchanged; "
            f"free space or make the folder writable, then {_rerun(name)}."
        ) from exc
    shutil.rmtree(retired, ignore_errors=True)
    unlock_artifacts(root)
    return final


# ---------------------------------------------------------------------------------------------
# Reading a predecessor's artifact


def _version_note(name, written):
    here = library_versions()
    differ = [f"{package} {written.get(package)} (here {here.get(package)})"
              for package in ("python", *RECORDED_PACKAGES) if written.get(package) != here.get(package)]
    return f"Warning: {name} was written with {', '.join(differ)}." if differ else None


def verify_artifact(folder, name):
    """Check `folder` against its manifest; raise `ArtifactError` naming the first damaged file.

    Warns in one line (on stderr) when the manifest's library versions differ from these.
    """
    folder = Path(folder)
    damaged = f"{_number(name)}'s artifact is damaged: {_rerun(name)}."
    try:
        manifest = read_json(folder / MANIFEST_FILE)
        files = manifest["files"]
    except FileNotFoundError:
        raise ArtifactError(f"{damaged} {folder.name}/{MANIFEST_FILE} is missing (deleted, or the folder "
                            "was not published by this version of the series).") from None
    except (ValueError, KeyError, TypeError):
        raise ArtifactError(f"{damaged} {folder.name}/{MANIFEST_FILE} is unreadable.") from None
    for relative, expected in files.items():
        path = folder / relative
        where = f"{folder.name}/{relative}"
        if not path.is_file():
            raise ArtifactError(f"{damaged} {where} is missing.")
        size = path.stat().st_size
        if size != expected["bytes"]:
            change = "was truncated" if size < expected["bytes"] else "grew"
            raise ArtifactError(f"{damaged} {where} {change} ({size:,} bytes; {expected['bytes']:,} when published).")
        if file_digest(path) != expected["sha256"]:
            raise ArtifactError(f"{damaged} {where} has changed since it was published (its SHA-256 differs).")
    note = _version_note(name, manifest.get("versions", {}))
    if note:
        print(note, file=sys.stderr)
    return manifest


def require_artifact(root, name, files=(CONFIG_FILE,)):
    """Return `root/name` if it holds `files` and matches its manifest, else raise an error naming the notebook to run.

    Args:
        root: the artifacts folder.
        name: the artifact's folder name, one of `PRODUCERS`.
        files: file names that must exist inside it.

    Raises:
        ArtifactError: the folder is missing, lacks one of `files`, or a file was changed,
            truncated or deleted since it was published.
    """
    folder = Path(root) / name
    missing = [f for f in files if not (folder / f).exists()]
    if not folder.is_dir() or missing:
        what = "is missing" if not folder.is_dir() else f"is incomplete (no {', '.join(missing)})"
        raise ArtifactError(
            f"The artifact {folder} {what}. Run notebooks/{PRODUCERS[name]} first; "
            "`python -m nbhelpers.run` runs the whole series in order, and in a notebook "
            f"`from nbhelpers.run import run_missing; run_missing({str(root)!r}, {name!r})` "
            "runs what is missing with the tiny profile."
        )
    verify_artifact(folder, name)
    return folder


# Where this machine keeps the series' data folder: a file at the artifacts folder's root, beside
# the artifact folders and not in any of them, so that no artifact holds a path of the machine.
DATA_LOCATION_FILE = ".data_dir"


def record_data_folder(root, data_dir):
    """Note where the data folder is for the notebooks after 01; return what an artifact says of it.

    Args:
        root: the artifacts folder.
        data_dir: the data folder notebook 01 read.

    Returns:
        `{"data_folder": its name, "data_checksums": {relative file path: SHA-256}}`, for a
        config.json: where the data came from, without a path of this machine.
    """
    data_dir = Path(data_dir).resolve()
    (Path(root) / DATA_LOCATION_FILE).write_text(str(data_dir) + "\n", encoding="utf-8")
    files = sorted(p for p in data_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
    return {"data_folder": data_dir.name,
            "data_checksums": {p.relative_to(data_dir).as_posix(): file_digest(p) for p in files}}


def data_folder(root, config=None):
    """The data folder recorded by `record_data_folder` (notebook 01) for the artifacts folder `root`.

    Where none is recorded (artifacts copied from elsewhere) and `config` says the data was the
    embedded synthetic data, that is generated again (it is seeded: the same files).

    Args:
        root: the artifacts folder.
        config: the predecessor's config.json, holding `data_folder`.

    Raises:
        ArtifactError: none is recorded, or it is gone; the message says to re-run notebook 01.
    """
    record = Path(root) / DATA_LOCATION_FILE
    if not record.is_file():
        if (config or {}).get("data_folder") == "synthetic":
            from nbhelpers.data import resolve_data_dir

            return resolve_data_dir("", root)
        raise ArtifactError(f"{root} does not say where its data folder is ({record} is missing, e.g. the "
                            f"artifacts were copied from another machine): {_rerun('01_baseline')}.")
    folder = Path(record.read_text(encoding="utf-8").strip())
    if not folder.is_dir():
        raise ArtifactError(f"The data folder {folder} that notebook 01 read is gone: {_rerun('01_baseline')} "
                            "with DATA_DIR set to where the data is now.")
    return folder


def resume_folder(root, name):
    """Where a notebook keeps state that must survive an interruption (e.g. training checkpoints).

    It lives beside the artifacts, not in the staging folder, which a new run clears. A worker
    that is not the chief of a multi-worker job keeps its own in its `worker_folder`: it resumes
    from the chief's state, which `fit_logged` sends it.
    """
    return _writable_root(root) / ".resume" / name


def write_json(path, data):
    """Write `data` as indented JSON, atomically (temporary file, then rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            os.chmod(tmp, _default_mode())  # mkstemp makes it 0600; give it what umask gives any file
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)  # a full disk leaves no half-written temporary behind
        raise


def read_json(path):
    """Read a JSON file."""
    with open(path) as f:
        return json.load(f)

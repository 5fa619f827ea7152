"""Artifact folders: each notebook writes exactly one, atomically, and reads its predecessor's.

A notebook stages its outputs in a hidden temporary folder and publishes it with one rename
once everything is written, so a crash or an interrupt never leaves a half-written artifact
where the next notebook would read it.

Example:

>>> staging = stage_artifact("artifacts", "01_baseline")
>>> write_json(staging / "metrics.json", {"dev_accuracy": 0.8})
>>> folder = publish_artifact(staging)
>>> read_json(require_artifact("artifacts", "01_baseline") / "metrics.json")
{'dev_accuracy': 0.8}
"""

import json
import os
import shutil
import tempfile
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


class ArtifactError(RuntimeError):
    """An input artifact is missing or incomplete."""


def stage_artifact(root, name):
    """Create an empty temporary folder beside `root/name` to write an artifact into.

    Args:
        root: the artifacts folder (created if needed).
        name: the artifact's folder name, one of `PRODUCERS`.

    Returns:
        The staging folder's `Path`; pass it to `publish_artifact` when everything is written.
    """
    if name not in PRODUCERS:
        raise ValueError(f"Unknown artifact {name!r}; expected one of {sorted(PRODUCERS)}.")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for leftover in root.glob(f".{name}.staging-*"):  # from a run that was interrupted
        shutil.rmtree(leftover, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f".{name}.staging-", dir=root))


def publish_artifact(staging):
    """Move a staging folder into place as `root/name`, replacing an older artifact.

    The replacement is two renames: the old folder is moved aside first and removed only after
    the new one is in place, so at every moment `root/name` is either the old or the new artifact.

    Args:
        staging: a folder returned by `stage_artifact`.

    Returns:
        The published folder's `Path`.
    """
    staging = Path(staging)
    name = staging.name[1:].split(".staging-")[0]
    if not (staging / CONFIG_FILE).is_file():
        raise ArtifactError(f"Refusing to publish {name}: it has no {CONFIG_FILE}.")
    final = staging.parent / name
    retired = staging.parent / f".{name}.retired"
    shutil.rmtree(retired, ignore_errors=True)
    if final.exists():
        os.replace(final, retired)
    os.replace(staging, final)
    shutil.rmtree(retired, ignore_errors=True)
    return final


def require_artifact(root, name, files=(CONFIG_FILE,)):
    """Return `root/name` if it holds `files`, else raise an error naming the notebook to run.

    Args:
        root: the artifacts folder.
        name: the artifact's folder name, one of `PRODUCERS`.
        files: file names that must exist inside it.
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
    return folder


def resume_folder(root, name):
    """Where a notebook keeps state that must survive an interruption (e.g. training checkpoints).

    It lives beside the artifacts, not in the staging folder, which a new run clears.
    """
    return Path(root) / ".resume" / name


def write_json(path, data):
    """Write `data` as indented JSON, atomically (temporary file, then rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def read_json(path):
    """Read a JSON file."""
    with open(path) as f:
        return json.load(f)

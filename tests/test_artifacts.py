"""Artifact folders: published atomically, verified by their readers, written by one run at a time."""

import errno
import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from nbhelpers.artifacts import (
    LOCK_OWNER_ENV,
    MANIFEST_FILE,
    ArtifactError,
    library_versions,
    lock_artifacts,
    publish_artifact,
    read_json,
    read_lock,
    require_artifact,
    stage_artifact,
    unlock_artifacts,
    write_json,
)


def test_an_artifact_appears_only_when_published(tmp_path):
    staging = stage_artifact(tmp_path, "03_encoder")
    write_json(staging / "config.json", {"a": 1})
    with pytest.raises(ArtifactError, match=r"03_encoder is missing\. Run notebooks/03_pretrain_encoder.ipynb first"):
        require_artifact(tmp_path, "03_encoder")
    folder = publish_artifact(staging)
    assert folder == tmp_path / "03_encoder" and not staging.exists()
    assert read_json(require_artifact(tmp_path, "03_encoder") / "config.json") == {"a": 1}


def test_publishing_replaces_the_old_artifact_whole(tmp_path):
    for version in (1, 2):
        staging = stage_artifact(tmp_path, "01_baseline")
        write_json(staging / "config.json", {"version": version})
        if version == 1:
            (staging / "old_only.txt").write_text("x")
        publish_artifact(staging)
    assert read_json(tmp_path / "01_baseline" / "config.json") == {"version": 2}
    assert not (tmp_path / "01_baseline" / "old_only.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01_baseline"]


def test_incomplete_artifacts_are_refused(tmp_path):
    staging = stage_artifact(tmp_path, "02_mlm_data")
    with pytest.raises(ArtifactError, match="no config.json"):
        publish_artifact(staging)
    (tmp_path / "02_mlm_data").mkdir()
    write_json(tmp_path / "02_mlm_data" / "config.json", {})
    with pytest.raises(ArtifactError, match=r"incomplete \(no vocab.txt\).*02_mlm_preprocessing.ipynb"):
        require_artifact(tmp_path, "02_mlm_data", files=("config.json", "vocab.txt"))


def test_an_interrupted_stage_is_cleaned_up_by_the_next_run(tmp_path):
    leftover = stage_artifact(tmp_path, "04_classifier")
    (leftover / "half_written.keras").write_text("")
    stage_artifact(tmp_path, "04_classifier")
    assert not leftover.exists()
    with pytest.raises(ValueError, match="Unknown artifact"):
        stage_artifact(tmp_path, "99_nothing")


# --- Artifacts that can be trusted: a manifest written last, checked by the reader -----------


def _published(root, name="03_encoder", payload=b"weights" * 1000):
    staging = stage_artifact(root, name)
    write_json(staging / "config.json", {"a": 1})
    (staging / "sub").mkdir()
    (staging / "sub" / "encoder.keras").write_bytes(payload)
    return publish_artifact(staging)


def test_the_manifest_lists_every_file_with_size_checksum_and_versions(tmp_path):
    folder = _published(tmp_path)
    manifest = read_json(folder / MANIFEST_FILE)
    assert set(manifest["files"]) == {"config.json", "sub/encoder.keras"}
    assert manifest["files"]["sub/encoder.keras"] == {"bytes": 7000, "sha256": hashlib.sha256(b"weights" * 1000).hexdigest()}
    assert set(manifest["versions"]) == {"python", "tensorflow", "keras", "keras-hub"}
    assert manifest["notebook"] == "03_pretrain_encoder.ipynb"


@pytest.mark.parametrize("damage, says", [
    ("truncate", r"03_encoder/sub/encoder.keras was truncated \(3,500 bytes; 7,000 when published\)"),
    ("flip a bit", r"03_encoder/sub/encoder.keras has changed since it was published"),
    ("delete", r"03_encoder/sub/encoder.keras is missing"),
    ("delete the manifest", r"03_encoder/manifest.json is missing"),
])
def test_a_damaged_artifact_is_refused_naming_the_file_and_the_notebook(tmp_path, damage, says):
    folder = _published(tmp_path)
    target = folder / "sub" / "encoder.keras"
    if damage == "truncate":
        os.truncate(target, 3500)
    elif damage == "flip a bit":
        data = bytearray(target.read_bytes())
        data[100] ^= 0x01
        target.write_bytes(bytes(data))
    elif damage == "delete":
        target.unlink()
    else:
        (folder / MANIFEST_FILE).unlink()
    with pytest.raises(ArtifactError, match=r"^03's artifact is damaged: re-run notebook 03 \(notebooks/03_pretrain_encoder.ipynb\)\. " + says):
        require_artifact(tmp_path, "03_encoder")


def test_other_library_versions_give_a_one_line_warning(tmp_path, capsys):
    folder = _published(tmp_path)
    manifest = read_json(folder / MANIFEST_FILE)
    write_json(folder / MANIFEST_FILE, {**manifest, "versions": {**manifest["versions"], "keras": "3.0.0"}})
    require_artifact(tmp_path, "03_encoder")
    warning = capsys.readouterr().err
    assert warning == f"Warning: 03_encoder was written with keras 3.0.0 (here {library_versions()['keras']}).\n"
    require_artifact(_published(tmp_path / "again").parent, "03_encoder")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_published_artifacts_get_the_permissions_the_umask_gives(tmp_path, umask):
    previous = os.umask(umask)
    try:
        folder = _published(tmp_path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask
    for path in folder.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o777 if path.is_dir() else 0o666) & ~umask, path


# --- One writer at a time: a lock file, tested with real processes ---------------------------

# Stages an artifact in the folder argv[1], then holds it argv[2] seconds, or ends at once
# without publishing or unlocking when argv[2] is "crash" (as a killed run would).
HOLD_THE_LOCK = """
import os, sys, time
from nbhelpers.artifacts import stage_artifact, write_json
staging = stage_artifact(sys.argv[1], "01_baseline")
write_json(staging / "config.json", {"writer": "first"})
print(staging, flush=True)
os._exit(3) if sys.argv[2] == "crash" else time.sleep(float(sys.argv[2]))
"""


def _python(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-c", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def test_a_second_run_stops_at_once_naming_the_first_and_leaves_its_staging_alone(tmp_path):
    first = _python(HOLD_THE_LOCK, str(tmp_path), "60")
    try:
        first_staging = Path(first.stdout.readline().strip())
        second = subprocess.run([sys.executable, "-c", HOLD_THE_LOCK, str(tmp_path), "0"],
                                capture_output=True, text=True, timeout=60)
        assert second.returncode != 0
        last_line = second.stderr.strip().splitlines()[-1]
        assert f"is being written by another run: process {first.pid} on " in last_line
        assert "Wait for it to finish or stop it, or use another artifacts folder" in last_line
        assert first_staging.is_dir() and (first_staging / "config.json").is_file()  # untouched
        assert read_lock(tmp_path)["pid"] == first.pid
    finally:
        first.kill()
        first.wait()


def test_a_lock_left_by_a_process_that_is_gone_is_taken_over(tmp_path):
    crashed = _python(HOLD_THE_LOCK, str(tmp_path), "crash")
    assert crashed.wait(timeout=60) == 3 and read_lock(tmp_path)["pid"] == crashed.pid
    leftover = Path(crashed.stdout.read().strip())
    folder = _published(tmp_path, "01_baseline")  # this process takes over, and clears the leftover
    assert not leftover.exists() and read_json(folder / "config.json") == {"a": 1}
    assert read_lock(tmp_path) is None  # released once published


def test_a_run_under_the_lock_of_its_parent_writes(tmp_path):
    assert lock_artifacts(tmp_path)
    try:
        child = subprocess.run([sys.executable, "-c", HOLD_THE_LOCK, str(tmp_path), "0"], capture_output=True,
                               text=True, timeout=60, env={**os.environ, LOCK_OWNER_ENV: str(os.getpid())})
        assert child.returncode == 0, child.stderr
    finally:
        unlock_artifacts(tmp_path)
    assert read_lock(tmp_path) is None


# --- A full disk or a read-only folder while publishing -------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs at `tmp_path/disk` (needs root and `mount`; skipped elsewhere)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip() or 'mount failed'}); "
                    "the full-disk test needs root")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def test_a_full_disk_while_publishing_keeps_the_previous_artifact_and_leaves_no_debris(small_disk):
    previous = _published(small_disk, payload=b"old")
    staging = stage_artifact(small_disk, "03_encoder")
    write_json(staging / "config.json", {"a": 2})
    (staging / "encoder.keras").write_bytes(b"new" * 1000)
    filler = small_disk / "filler"
    with open(filler, "wb", buffering=0) as f:  # fill the disk to the last byte, so the manifest cannot be written
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    with pytest.raises(ArtifactError, match=r"^Could not publish 03_encoder into .*: the disk is full\. The previous "
                       r"03_encoder \(if any\) is unchanged; free space .* re-run notebook 03"):
        publish_artifact(staging)
    filler.unlink()
    assert (previous / "sub" / "encoder.keras").read_bytes() == b"old"
    require_artifact(small_disk, "03_encoder")
    stage_artifact(small_disk, "03_encoder")  # the next run
    assert sorted(p.name for p in small_disk.iterdir() if not p.name.startswith(".03_encoder.staging-")) == [".lock", "03_encoder"]
    assert len(list(small_disk.glob(".03_encoder.staging-*"))) == 1  # only the new run's own


def test_a_read_only_artifacts_folder_is_one_clear_error(small_disk):
    previous = _published(small_disk)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with pytest.raises(ArtifactError, match=r"^Cannot write the artifact 03_encoder into .*disk: Read-only file system\.$"):
        stage_artifact(small_disk, "03_encoder")
    require_artifact(small_disk, "03_encoder")
    assert (previous / "sub" / "encoder.keras").is_file()

"""Nothing lost: an interrupted pretraining run resumes; the same seed gives the same metrics."""

import csv
import shutil
import subprocess
import sys
import time

import psutil

from nbhelpers.artifacts import read_json, resume_folder
from nbhelpers.run import load_profile, notebook_paths, run_series
from conftest import printed


EPOCHS = 3


def _runner(artifacts, *args):
    return [sys.executable, "-m", "nbhelpers.run", "--artifacts", str(artifacts), *args]


def _finished_epochs(history_csv):
    if not history_csv.is_file():
        return 0
    with open(history_csv, newline="") as f:
        return len(list(csv.DictReader(f)))


def _kill_tree(process):
    parent = psutil.Process(process.pid)
    for child in parent.children(recursive=True) + [parent]:  # the runner and its Jupyter kernel
        child.kill()
    process.wait(timeout=30)


def test_killed_pretraining_resumes_and_ends_like_an_uninterrupted_run(tiny_series, tmp_path):
    artifacts = tmp_path / "artifacts"
    for artifact in ("01_baseline", "02_mlm_data"):  # notebook 03's inputs, from the tiny series
        shutil.copytree(tiny_series[0] / artifact, artifacts / artifact)
    history_csv = resume_folder(artifacts, "03_encoder") / "history.csv"

    process = subprocess.Popen(
        _runner(artifacts, "--only", "03", "-p", "PRETRAIN_EPOCHS", str(EPOCHS)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while _finished_epochs(history_csv) < 1:  # Wait for the first checkpoint ...
        assert process.poll() is None, "notebook 03 ended before its first epoch finished"
        assert time.monotonic() < deadline, "no epoch finished within 5 minutes"
        time.sleep(0.2)
    time.sleep(1.5)  # ... then kill it in the middle of the second epoch.
    _kill_tree(process)
    assert _finished_epochs(history_csv) == 1
    assert not (artifacts / "03_encoder").exists()  # nothing half-published

    resumed = run_series(notebook_paths(only=["03"]), {"PRETRAIN_EPOCHS": EPOCHS}, artifacts)[0]
    assert "Resuming from the training state" in printed(resumed)
    metrics = read_json(artifacts / "03_encoder" / "metrics.json")
    config = read_json(artifacts / "02_mlm_data" / "config.json")
    steps_per_epoch = config["train_sequences"] // load_profile("tiny")["PRETRAIN_BATCH_SIZE"]
    assert len(metrics["history"]["loss"]) == EPOCHS
    assert metrics["optimizer_steps"] == EPOCHS * steps_per_epoch
    assert not resume_folder(artifacts, "03_encoder").exists()


# Wall-clock figures, the only metrics that may differ between two runs.
TIMING_KEYS = {"minutes", "seconds", "training_minutes", "embedding_start_seconds"}


def _without_timings(metrics):
    if isinstance(metrics, dict):
        return {k: _without_timings(v) for k, v in metrics.items() if k not in TIMING_KEYS}
    return metrics


def test_the_tiny_profile_twice_with_one_seed_gives_identical_metrics(tiny_series, tmp_path):
    run_series(notebook_paths(), load_profile("tiny"), tmp_path)  # the second run, beside the first
    for artifact in ("01_baseline", "03_encoder", "04_classifier", "05_export"):
        first = read_json(tiny_series[0] / artifact / "metrics.json")
        second = read_json(tmp_path / artifact / "metrics.json")
        assert artifact == "05_export" or "minutes" in first["history"]  # timings are there, and left out below
        assert _without_timings(second) == _without_timings(first), artifact

"""Long runs are never silent: training prints the time elapsed and left; the runner shows cells."""

import io
import logging
import re

import keras
import numpy as np

from nbhelpers.progress import QUIET_ENV, format_duration
from nbhelpers.run import ConsoleProgress, notebook_paths
from nbhelpers.training import TrainingProgress


def _fit(callback, epochs=2):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    model.fit(np.zeros((40, 3)), np.zeros((40, 1)), batch_size=10, epochs=epochs, callbacks=[callback], verbose=0)


def test_training_prints_every_epoch_with_elapsed_and_left():
    out = io.StringIO()
    _fit(TrainingProgress("pretraining", stream=out))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert re.fullmatch(r"pretraining: epoch 1/2, step 4/4, \d+s elapsed, about \d+s left", lines[0])
    assert re.fullmatch(r"pretraining: epoch 2/2, step 4/4, \d+s elapsed, about 0s left", lines[1])


def test_training_prints_within_an_epoch_at_the_interval():
    out = io.StringIO()
    _fit(TrainingProgress("fine-tuning", interval=0, every_epoch=False, stream=out), epochs=1)
    lines = out.getvalue().splitlines()
    assert [line.split(",")[1].strip() for line in lines[:4]] == ["step 1/4", "step 2/4", "step 3/4", "step 4/4"]
    assert all(" elapsed, about " in line for line in lines)


def test_quiet_training_prints_nothing(monkeypatch):
    monkeypatch.setenv(QUIET_ENV, "1")
    out = io.StringIO()
    _fit(TrainingProgress(interval=0, stream=out))
    assert out.getvalue() == ""


def test_durations_read_at_a_glance():
    assert [format_duration(s) for s in (8.4, 192, 3725)] == ["8s", "3m 12s", "1h 02m"]


def _record(function, message):
    return logging.LogRecord("papermill", logging.INFO, __file__, 1, message, None, None, func=function)


def test_the_console_names_each_code_cell_shows_the_output_and_a_heartbeat():
    out = io.StringIO()
    notebook = notebook_paths(only=["05"])[0]
    progress = ConsoleProgress(notebook, parameterized=True, heartbeat=0.01, stream=out)
    try:
        for index in range(3):  # markdown, the install cell, the parameters cell
            progress.emit(_record("cell_start", f"Executing Cell {index + 1:-<40}"))
        progress.emit(_record("log_output_message", "precision policy: float32\n"))
        progress.emit(_record("cell_complete", f"Ending Cell {3:-<43}"))
        progress.stopped.wait(0.5)  # the heartbeat looks every 0.01 seconds
    finally:
        progress.close()
    lines = out.getvalue().splitlines()
    code_cells = sum(c == "code" for c in progress.kinds)
    assert lines[:3] == [f"-- 05_export_raw_text.ipynb: cell 1 of {code_cells}",
                         f"-- 05_export_raw_text.ipynb: cell 2 of {code_cells}", "precision policy: float32"]
    assert lines[3].startswith("-- 05_export_raw_text.ipynb: still running cell 2, ")

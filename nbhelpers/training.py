"""Training helpers: precision policy, seeding, a logged and resumable `fit`, and evaluation.

How long training runs (learning-rate schedules, time budgets) is for `nbhelpers.schedules`.

Example:

>>> set_precision("float32")  # "auto": mixed_float16 on a GPU, float32 on a CPU
'float32'
>>> set_seed(42)
"""

import csv
import os
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np

from nbhelpers.artifacts import read_json, write_json
from nbhelpers.distribution import feed_workers, from_chief, multi_worker_job
from nbhelpers.optimizers import FusedAdamW
from nbhelpers.progress import PROGRESS_SECONDS, QUIET_ENV, format_duration

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")


def set_precision(precision):
    """Set Keras' global dtype policy and return its name.

    Args:
        precision: one of `PRECISIONS`; "auto" picks mixed_float16 when the Keras backend
            sees a GPU, float32 otherwise (a CPU gains nothing from float16).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"PRECISION must be one of {PRECISIONS}, got {precision!r}.")
    if precision == "auto":
        precision = "mixed_float16" if backend_sees_gpu() else "float32"
    keras.mixed_precision.set_global_policy(precision)
    return precision


def backend_sees_gpu():
    """Whether the active Keras backend has a GPU to run on (asked of that backend, not of TensorFlow:
    under JAX or PyTorch, TensorFlow may be a CPU-only build used for text preprocessing)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return any(device.platform == "gpu" for device in jax.devices())
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def use_xla():
    """Whether to compile TensorFlow training steps with XLA (`jit_compile=`): on a GPU yes, on a CPU no.

    The guide compiles with XLA. On a 2-core CPU (TensorFlow 2.21), a fine-tuning step of the tiny
    profile's classifier measured 69 ms with XLA against 10 ms without, side by side in one
    process; on a GPU, XLA fuses the many small ops and wins. JAX: always (without it, JAX runs
    op by op). PyTorch: no (there `jit_compile` means `torch.compile`, not measured here).
    """
    backend = keras.backend.backend()
    if backend == "jax":
        return True
    return backend == "tensorflow" and backend_sees_gpu()


def set_seed(seed):
    """Seed Python, NumPy and the backend, and make TensorFlow's ops deterministic where it is installed.

    With the same seed and machine, a run repeats exactly (the tests run the tiny profile twice
    and compare `metrics.json`). TensorFlow is not needed: the accelerator path (`bench/gpu_step.py`)
    runs without it.
    """
    keras.utils.set_random_seed(seed)
    # TensorFlow is loaded by its Keras backend or by the tf.data pipelines (nbhelpers.masking,
    # nbhelpers.tokenization); where neither is in use there are no TensorFlow ops to pin.
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


class WallClock(keras.callbacks.Callback):
    """Adds `minutes` (wall time since training started in this process) to each epoch's logs."""

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["minutes"] = (time.perf_counter() - self.start) / 60


class TrainingProgress(keras.callbacks.Callback):
    """Prints where training stands, with the time elapsed and an estimate of the time left.

    A line at each epoch's end (with `every_epoch`) and at least every `interval` seconds in
    between, so a long epoch is never silent; in a notebook, and on the console of a headless
    run (the runner forwards the notebook's output). Silent where `NBHELPERS_QUIET` is set.

    Args:
        label: what is training, the start of every line (e.g. "pretraining").
        interval: the most seconds between two lines.
        every_epoch: also print at every epoch's end (off for many short fits).
        stream: where the lines go (default stdout).
    """

    def __init__(self, label="training", interval=PROGRESS_SECONDS, every_epoch=True, stream=None):
        super().__init__()
        self.label, self.interval, self.every_epoch = label, interval, every_epoch
        self.stream = stream
        self.quiet = os.environ.get(QUIET_ENV, "") not in ("", "0")

    def on_train_begin(self, logs=None):
        self.start = self.last_line = time.perf_counter()
        self.first_epoch = None
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        if self.first_epoch is None:  # > 0 where training resumed from saved state
            self.first_epoch = epoch

    def _report(self, steps_done_in_epoch, epoch_finished):
        now = time.perf_counter()
        elapsed = now - self.start
        epochs, steps = self.params.get("epochs") or 1, self.params.get("steps")
        if steps:
            done = (self.epoch - self.first_epoch) * steps + steps_done_in_epoch
            remaining = (epochs - self.epoch) * steps - steps_done_in_epoch
            where = f"epoch {self.epoch + 1}/{epochs}, step {steps_done_in_epoch}/{steps}"
        else:  # a dataset of unknown length: estimate by whole epochs
            done = self.epoch - self.first_epoch + (1 if epoch_finished else 0)
            remaining = epochs - self.epoch - (1 if epoch_finished else 0)
            where = f"epoch {self.epoch + 1}/{epochs}"
        left = f"about {format_duration(elapsed / done * remaining)} left" if done else "time left not known yet"
        print(f"{self.label}: {where}, {format_duration(elapsed)} elapsed, {left}", file=self.stream or sys.stdout,
              flush=True)
        self.last_line = now

    def on_train_batch_end(self, batch, logs=None):
        if not self.quiet and time.perf_counter() - self.last_line >= self.interval:
            self._report(batch + 1, epoch_finished=False)

    def on_epoch_end(self, epoch, logs=None):
        if not self.quiet and (self.every_epoch or time.perf_counter() - self.last_line >= self.interval):
            self._report(self.params.get("steps") or 0, epoch_finished=True)


def repeated_epochs(dataset):
    """`(dataset.repeat(), batches per pass)`: train for epochs on one iterator.

    `dataset`: a `tf.data.Dataset` of known length, or `nbhelpers.batches.NumpyBatches`.

    Keras makes a new iterator of a finite dataset for every epoch, and a new iterator of a
    bucketed pipeline over a large in-memory array waits long before its first batch (34 s of a
    76-second epoch on 20,000 SST-2 sentences, 2 cores; no retracing involved). Pass the repeated
    dataset to `fit` with `steps_per_epoch` set to the second value: one iterator, no waits.
    The epochs are the same passes, reshuffled each time.
    """
    if isinstance(dataset, keras.utils.PyDataset):  # nbhelpers.batches' NumPy batches: each pass reshuffled
        return dataset.repeat(), len(dataset)
    batches = int(dataset.cardinality())
    if batches < 0:
        raise ValueError("The dataset's length is unknown (or infinite): give it one with "
                         "tf.data.experimental.assert_cardinality, as classification_dataset does.")
    return dataset.repeat(), batches


def share_chief_state(state_dir):
    """In a multi-worker job, copy the chief's saved training state into every worker's `state_dir`.

    Only the chief keeps the state that `BackupAndRestore` restores after an interruption (the
    other workers write nothing beside the artifacts, and may not share its file system). Every
    worker must then restore the same state at the same moment: loading weights into variables
    spread over all processes is a collective step on JAX (a chief loading alone waited forever).
    So the chief sends its files, and each worker restores from its own copy. Elsewhere, nothing.
    """
    if multi_worker_job()[0] == 1:
        return
    state_dir = Path(state_dir)
    for name in ("latest.weights.h5", "training_metadata.json"):  # BackupAndRestore's files
        path = state_dir / name
        data = path.read_bytes() if path.is_file() else b""
        size = int(from_chief([len(data)])[0])
        path.unlink(missing_ok=True)
        if not size:
            continue
        # Bytes travel as uint32 words (exact even where from_chief sums in float64), the chief's
        # count of them from every worker.
        count = -(-size // 4)
        words = np.frombuffer(data + b"\0" * (-len(data) % 4), dtype="<u4")
        (received,) = from_chief([words if len(words) == count else np.zeros(count, "<u4")])
        state_dir.mkdir(parents=True, exist_ok=True)
        path.write_bytes(received.astype("<u4").tobytes()[:size])


def fit_logged(
    model, train, validation, epochs, log_dir, resume_dir=None, resume_config=None, verbose=2,
    steps_per_epoch=None, progress_label="training", callbacks=(),
):
    """`model.fit` with the per-epoch history in `log_dir/history.csv`, optionally resumable.

    While it trains, `TrainingProgress` prints the time elapsed and left at every epoch's end
    and at least every minute.

    With `resume_dir`, the training state (weights, optimizer, epoch) is kept there by
    `keras.callbacks.BackupAndRestore` after every epoch, and the history beside it, so calling
    this again after an interruption continues from the last finished epoch and returns the
    whole history. The state is kept only for the same `resume_config`; with another, training
    starts afresh. `resume_dir` is removed once training completes. In a multi-worker job only
    the chief's state is kept (the other workers' `resume_folder` is their own temporary one),
    and the chief sends it to the others when training resumes (`share_chief_state`).

    Args:
        model: a compiled Keras model.
        train: the training dataset.
        validation: the validation dataset, evaluated after every epoch.
        epochs: how many epochs in all.
        log_dir: the folder that receives `history.csv`.
        resume_dir: a folder for the training state, or `None` for a plain `fit`.
        resume_config: a JSON-able description of the run; state saved under another is discarded.
        verbose: Keras' verbosity (2: one line per epoch, best in logs and notebooks).
        steps_per_epoch: for a repeated (endless) `train`, the steps between two evaluations.
        progress_label: what the progress lines call this training.
        callbacks: more Keras callbacks (e.g. `nbhelpers.finetune_recipes.WeightAveraging`), run last.

    Returns:
        The history as a dict of per-epoch lists (`loss`, `val_loss`, metrics ..., and
        `minutes`, the wall time at the epoch's end), all epochs.
    """
    csv_path = Path(log_dir) / "history.csv"
    extra, callbacks = list(callbacks), []
    if resume_dir is not None:
        resume_dir = Path(resume_dir)
        stamp = resume_dir / "run.json"
        if resume_dir.exists() and (not stamp.is_file() or read_json(stamp) != resume_config):
            print(f"Discarding saved training state from another configuration in {resume_dir}.")
            shutil.rmtree(resume_dir)
        elif (resume_dir / "history.csv").is_file():
            print(f"Resuming from the training state in {resume_dir}.")
        resume_dir.mkdir(parents=True, exist_ok=True)
        write_json(stamp, resume_config)
        csv_path = resume_dir / "history.csv"
        share_chief_state(resume_dir / "state")  # a worker that is not the chief restores the chief's
        callbacks.append(keras.callbacks.BackupAndRestore(str(resume_dir / "state")))
    # WallClock first: it adds `minutes` to the logs that CSVLogger then writes.
    callbacks += [WallClock(), keras.callbacks.CSVLogger(str(csv_path), append=True), TrainingProgress(progress_label),
                  *extra]
    if steps_per_epoch is None and isinstance(train, keras.utils.PyDataset):
        steps_per_epoch = len(train)  # one pass an epoch, also where feed_workers repeats it
    train, validation = feed_workers(train, validation)  # a JAX multi-worker job: each worker its part
    model.fit(
        train,
        validation_data=validation,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # The tf.data pipelines shuffle (with a seed) themselves.
    )
    history = read_history(csv_path)
    if resume_dir is not None:
        shutil.copyfile(csv_path, Path(log_dir) / "history.csv")
        shutil.rmtree(resume_dir)
    return history


def read_history(csv_path):
    """Read a `CSVLogger` file into a dict of per-epoch float lists (without the epoch column).

    Columns that `CSVLogger` filled with "NA" (`val_loss` of a `fit` without validation) are left out.
    """
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {key: [float(row[key]) for row in rows] for key in (rows[0] if rows else ())
            if key != "epoch" and any(row[key] != "NA" for row in rows)}


def finetuning_optimizer(learning_rate):
    """The fine-tuning optimizer: AdamW at a constant learning rate, as the guide's, built as `FusedAdamW`.

    `FusedAdamW` is AdamW in one pass over each variable a step on TensorFlow. Where the step is
    not XLA-compiled (`use_xla`: on CPUs) it updates only the rows of the token embedding that the
    batch holds (`lazy_sparse_updates`: a batch of short sentences holds a few hundred of its
    rows, and a pass over all of them was a fifth of a CPU step; under XLA the lazy update was 5x
    slower).

    Args:
        learning_rate: a float, or a Keras learning-rate schedule.

    Example:

    >>> optimizer = finetuning_optimizer(7e-5)
    >>> type(optimizer).__name__, optimizer.lazy_sparse_updates == (not use_xla())
    ('FusedAdamW', True)
    """
    return FusedAdamW(learning_rate, lazy_sparse_updates=not use_xla())


def compile_classifier(classifier, optimizer):
    """Compile a sigmoid sentiment classifier for fine-tuning: binary cross-entropy, accuracy, XLA where it pays.

    Args:
        classifier: a Keras model with one sigmoid output, as `nbhelpers.models.build_classifier` builds.
        optimizer: a Keras optimizer; `finetuning_optimizer(learning_rate)` for the series' own.

    Returns:
        The classifier, compiled.

    Example:

    >>> from nbhelpers.models import build_classifier, build_encoder
    >>> classifier = build_classifier(build_encoder(50, 16, 1, 8, 2, 16, 0.0))
    >>> compile_classifier(classifier, finetuning_optimizer(1e-3)).loss
    'binary_crossentropy'
    """
    classifier.compile(loss="binary_crossentropy", optimizer=optimizer, metrics=["accuracy"], jit_compile=use_xla())
    return classifier


def binary_accuracy(model, dataset):
    """The accuracy of a sigmoid classifier on a `(inputs, labels)` dataset, thresholded at 0.5."""
    correct = total = 0
    for inputs, labels in dataset:
        predicted = np.asarray(model(inputs, training=False)).reshape(-1) > 0.5
        correct += int((predicted == (np.asarray(labels).reshape(-1) > 0.5)).sum())
        total += len(predicted)
    return correct / total

"""A few training steps of the tiny profile's MLM model, run by tests/test_multi_worker.py.

Run as two processes with `multi_worker` (their job described by TF_CONFIG or Keras' JAX
variables): they take the same global batches, stage and publish the `03_encoder` artifact as
notebook 03 does (resumable `fit_logged` included) and save the trained weights to `OUT`. Given
`REFERENCE`, the process then trains the same model again on one device of its own, as one
process would (`none`), and saves those weights there: the test compares the two.

Usage: python multi_worker_train.py none|multi_worker ARTIFACTS_DIR OUT.npz [REFERENCE.npz]
"""

import os
import sys

# A Jupyter kernel defines sys.ps1; TensorFlow's logger then prints INFO lines (one per
# all-reduce under MultiWorkerMirroredStrategy). Run as a notebook's kernel does.
sys.ps1 = ">>> "

import nbhelpers  # noqa: F401  (first: it quiets TensorFlow's start-up)
import keras
import numpy as np

from nbhelpers.artifacts import publish_artifact, resume_folder, stage_artifact, write_json
from nbhelpers.distribution import check_global_batch, data_parallel
from nbhelpers.models import build_encoder, build_pretraining_model
from nbhelpers.training import fit_logged, set_seed, use_xla

# The tiny profile's model (params/tiny.yaml), without dropout: dropout draws its masks per
# device, so a split batch would not drop the same units as the whole one.
VOCABULARY, SEQUENCE, PREDICTIONS = 120, 64, 16
GLOBAL_BATCH, STEPS, EPOCHS = 8, 2, 2
# Set: the process ends (exit status 3) right after its first epoch's training state is saved.
STOP_ENV = "MULTI_WORKER_STOP_AFTER_FIRST_EPOCH"


def batches(seed=0):
    """Seeded MLM batches `(features, targets, weights)`, the same in every process."""
    rng = np.random.default_rng(seed)
    rows = GLOBAL_BATCH * STEPS
    token_ids = rng.integers(5, VOCABULARY, size=(rows, SEQUENCE)).astype("int32")
    token_ids[:, 48:] = 0  # padding at the end, as packed text has
    positions = np.sort(rng.choice(48, size=(rows, PREDICTIONS)), axis=1).astype("int32")
    targets = np.take_along_axis(token_ids, positions, axis=1)
    weights = (rng.random((rows, PREDICTIONS)) < 0.8).astype("float32")
    for start in range(0, rows, GLOBAL_BATCH):
        part = slice(start, start + GLOBAL_BATCH)
        yield {"token_ids": token_ids[part], "mask_positions": positions[part]}, targets[part], weights[part]


def train(kind, artifacts):
    """The trained model, its artifact published (by the chief) into `artifacts`."""
    set_seed(0)
    staging = stage_artifact(artifacts, "03_encoder")  # where notebook 03 stages: before data_parallel
    devices = data_parallel(kind)
    check_global_batch(GLOBAL_BATCH, devices.replicas)
    with devices:
        encoder = build_encoder(vocabulary_size=VOCABULARY, sequence_length=SEQUENCE, num_layers=1, model_dim=32,
                                num_heads=2, intermediate_dim=64, dropout=0.0)
        model = build_pretraining_model(encoder, PREDICTIONS)
        model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.AdamW(1e-2),
                      jit_compile=use_xla())
        # On JAX, validation batches too: each worker must read its part of them again every epoch.
        validation = GlobalBatches(seed=1) if keras.backend.backend() == "jax" else None
        history = fit_logged(model, training_data(), validation, epochs=EPOCHS, steps_per_epoch=STEPS, log_dir=staging,
                             resume_dir=resume_folder(artifacts, "03_encoder"), resume_config={"kind": kind},
                             verbose=0)
    model.save_weights(staging / "mlm.weights.h5")
    write_json(staging / "config.json", {"distribution": kind, "replicas": devices.replicas,
                                         "global_batch_size": GLOBAL_BATCH})
    write_json(staging / "metrics.json", {"history": history})
    publish_artifact(staging)
    return model


class GlobalBatches(keras.utils.PyDataset):
    """The global batches as notebooks 03-04 give NumPy batches (`nbhelpers.batches.NumpyBatches`):
    a `PyDataset` read once an epoch, with `repeat()` for endless passes."""

    def __init__(self, seed=0):
        super().__init__()
        self.batches = list(batches(seed))

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        return self.batches[index]

    def repeat(self):
        while True:
            yield from self.batches


def training_data():
    """Global batches, cut for each worker by fit_logged or by the strategy: NumPy on JAX (the
    TensorFlow-free path), tf.data on TensorFlow."""
    if keras.backend.backend() == "jax":
        return GlobalBatches()
    import tensorflow as tf

    data = tf.data.Dataset.from_generator(
        batches, output_signature=({"token_ids": tf.TensorSpec((GLOBAL_BATCH, SEQUENCE), "int32"),
                                    "mask_positions": tf.TensorSpec((GLOBAL_BATCH, PREDICTIONS), "int32")},
                                   tf.TensorSpec((GLOBAL_BATCH, PREDICTIONS), "int32"),
                                   tf.TensorSpec((GLOBAL_BATCH, PREDICTIONS), "float32")))
    options = tf.data.Options()
    # A generator cannot be split by file; each worker keeps its part of every batch.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return data.with_options(options).repeat()


def save_weights(model, path):
    np.savez(path, *[keras.ops.convert_to_numpy(w) for w in model.weights])


def stop_after_first_epoch():
    """End this process at once after the first epoch's training state is saved (as a kill would)."""
    save = keras.callbacks.BackupAndRestore.on_epoch_end

    def save_then_stop(self, epoch, logs=None):
        save(self, epoch, logs)
        os._exit(3)

    keras.callbacks.BackupAndRestore.on_epoch_end = save_then_stop


def main(kind, artifacts, out, reference=None):
    if os.environ.get(STOP_ENV):
        stop_after_first_epoch()
    save_weights(train(kind, artifacts), out)
    if reference:
        # Outside the distribution's scope: variables on this process's first device, steps run
        # here alone, as in a process of its own (no artifact: nothing is staged or published).
        set_seed(0)
        encoder = build_encoder(vocabulary_size=VOCABULARY, sequence_length=SEQUENCE, num_layers=1, model_dim=32,
                                num_heads=2, intermediate_dim=64, dropout=0.0)
        model = build_pretraining_model(encoder, PREDICTIONS)
        model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.AdamW(1e-2),
                      jit_compile=use_xla())
        model.fit((batch for _ in range(EPOCHS) for batch in batches()) if keras.backend.backend() == "jax"
                  else training_data(), epochs=EPOCHS, steps_per_epoch=STEPS, verbose=0, shuffle=False)
        save_weights(model, reference)


if __name__ == "__main__":
    main(*sys.argv[1:])

"""`FusedAdamW` updates like Keras's AdamW, alone and under `tf.distribute`, and saves with a model."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nbhelpers.optimizers import FusedAdamW


class DenseGradientAdamW(keras.optimizers.AdamW):
    """Keras's AdamW given each gradient as a dense tensor: Adam's update of the summed gradient.

    (Given an embedding's sparse gradient with an id repeated in the batch, Keras's AdamW on
    TensorFlow squares each occurrence's gradient on its own, so its second moment differs from
    Adam's, JAX's and its own on a dense gradient. `FusedAdamW` follows Adam.)
    """

    def update_step(self, gradient, variable, learning_rate):
        super().update_step(tf.convert_to_tensor(gradient), variable, learning_rate)


def small_classifier():
    """Token embedding (a sparse gradient), a dense layer and a bias: every kind of variable."""
    token_ids = keras.Input(shape=(6,), dtype="int32")
    vectors = keras.layers.Embedding(50, 8, name="embedding")(token_ids)
    pooled = keras.layers.GlobalAveragePooling1D()(vectors)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="out")(pooled)
    return keras.Model(token_ids, outputs)


def data():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 30, size=(64, 6)).astype("int32")  # rows 30-49 of the embedding get no gradient
    return ids, (ids[:, 0] % 2).astype("float32")


def trained_weights(optimizer):
    keras.utils.set_random_seed(0)
    model = small_classifier()
    model.compile(loss="binary_crossentropy", optimizer=optimizer)
    ids, labels = data()
    model.fit(ids, labels, batch_size=16, epochs=3, shuffle=False, verbose=0)
    return model.get_weights()


def schedule():
    return keras.optimizers.schedules.PolynomialDecay(3e-2, decay_steps=12, end_learning_rate=1e-3)


@pytest.mark.parametrize("weight_decay", [0.004, 0.5, 0.0])
def test_fused_adamw_trains_like_keras_adamw(weight_decay):
    fused = trained_weights(FusedAdamW(schedule(), weight_decay=weight_decay))
    keras_adamw = trained_weights(DenseGradientAdamW(schedule(), weight_decay=weight_decay))
    initial = trained_weights(keras.optimizers.SGD(0.0))
    for ours, theirs, start in zip(fused, keras_adamw, initial):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
        assert not np.allclose(ours, start)  # every variable moved, the untouched embedding rows too
    untouched = slice(30, 50)
    if weight_decay:  # only decay and momentum move rows without a gradient, and they did
        assert not np.allclose(fused[0][untouched], initial[0][untouched])


def test_fused_adamw_leaves_excluded_variables_undecayed():
    def optimizer(kind):
        made = kind(learning_rate=1e-2, weight_decay=0.9)
        made.exclude_from_weight_decay(var_names=["bias"])
        return made

    fused, keras_adamw = (trained_weights(optimizer(kind)) for kind in (FusedAdamW, DenseGradientAdamW))
    for ours, theirs in zip(fused, keras_adamw):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


MIRRORED = """
import json, sys
import numpy as np, tensorflow as tf
# Two logical CPUs stand in for two GPUs (before TensorFlow starts its runtime).
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, "tests")
from test_optimizers import trained_weights, DenseGradientAdamW
from nbhelpers.distribution import data_parallel
from nbhelpers.optimizers import FusedAdamW

with data_parallel("auto") as replicas:
    mirrored = trained_weights(FusedAdamW(1e-2))
one_device = trained_weights(DenseGradientAdamW(1e-2))
print(json.dumps({"replicas": replicas,
                  "difference": max(float(np.abs(a - b).max()) for a, b in zip(mirrored, one_device))}))
"""


ON_JAX = """
import json, sys
import keras, numpy as np
sys.path.insert(0, "tests")
from test_optimizers import trained_weights
from nbhelpers.optimizers import FusedAdamW

fused, keras_adamw = (trained_weights(kind(1e-2, weight_decay=0.1)) for kind in (FusedAdamW, keras.optimizers.AdamW))
print(json.dumps({"backend": keras.backend.backend(), "same": all(np.array_equal(a, b) for a, b in zip(fused, keras_adamw))}))
"""


def test_fused_adamw_under_a_mirrored_strategy_matches_one_device(run_under_backend):
    result = run_under_backend(MIRRORED, "tensorflow")
    assert result["replicas"] == 2 and result["difference"] < 1e-5, result


def test_fused_adamw_is_keras_adamw_on_jax(run_under_backend):
    assert run_under_backend(ON_JAX, "jax") == {"backend": "jax", "same": True}


def test_fused_adamw_round_trips_through_its_config_and_a_saved_model(tmp_path):
    optimizer = FusedAdamW(2e-3, weight_decay=0.01, beta_2=0.98)
    restored = FusedAdamW.from_config(optimizer.get_config())
    assert restored.get_config() == optimizer.get_config()
    model = small_classifier()
    model.compile(loss="binary_crossentropy", optimizer=optimizer)
    ids, labels = data()
    model.fit(ids, labels, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(loaded.optimizer, FusedAdamW) and loaded.optimizer.weight_decay == 0.01
    for saved, kept in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(saved, kept)

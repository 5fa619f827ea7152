"""`FusedAdamW` updates like Keras's AdamW (or lazily, like LazyAdam), alone and under
`tf.distribute`, and saves with a model."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nbhelpers import training
from nbhelpers.optimizers import FusedAdamW
from nbhelpers.training import compile_classifier, finetuning_optimizer


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


def catch_up_rows(weights, first, second, rows, missed, step_size, decay, optimizer):
    """Numpy: the rows' weights and moments after `missed` steps without a gradient, step by step."""
    beta_1, beta_2, epsilon = optimizer.beta_1, optimizer.beta_2, optimizer.epsilon
    for row in rows:
        drift = sum(step_size * beta_1**j * first[row] / (np.sqrt(beta_2**j * second[row]) + epsilon)
                    for j in range(1, missed[row] + 1))
        weights[row] = weights[row] * decay ** missed[row] - drift
        first[row] *= beta_1 ** missed[row]
        second[row] *= beta_2 ** missed[row]


def lazy_adamw_rows(weights, first, second, last, gradients, step, learning_rate, weight_decay, optimizer):
    """Numpy lazy AdamW with catch-up: the rows in `gradients` ({row: summed gradient}), each
    first given the steps it missed since `last[row]`."""
    beta_1, beta_2, epsilon = optimizer.beta_1, optimizer.beta_2, optimizer.epsilon
    step_size = learning_rate * np.sqrt(1 - beta_2**step) / (1 - beta_1**step)
    decay = 1 - learning_rate * weight_decay
    missed = {row: step - 1 - last[row] for row in gradients}
    catch_up_rows(weights, first, second, gradients, missed, step_size, decay, optimizer)
    for row, gradient in gradients.items():
        first[row] = beta_1 * first[row] + (1 - beta_1) * gradient
        second[row] = beta_2 * second[row] + (1 - beta_2) * gradient**2
        weights[row] = weights[row] * decay - step_size * first[row] / (np.sqrt(second[row]) + epsilon)
        last[row] = step


def test_lazy_sparse_updates_move_only_the_rows_a_sparse_gradient_holds_and_catch_up_at_the_end():
    rng = np.random.default_rng(1)
    start = rng.normal(size=(10, 4)).astype("float32")
    table = keras.Variable(start)
    optimizer = FusedAdamW(0.05, weight_decay=0.3, lazy_sparse_updates=True)
    weights, first, second, last = start.astype("float64"), np.zeros((10, 4)), np.zeros((10, 4)), [0] * 10

    def check_against_the_reference():
        np.testing.assert_allclose(table.numpy(), weights, rtol=1e-5, atol=1e-6)
        moments = {variable.path.split("_")[-1]: variable.numpy() for variable in optimizer.variables[2:4]}
        np.testing.assert_allclose(moments["momentum"], first, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(moments["velocity"], second, rtol=1e-4, atol=1e-9)  # 1 - beta_2 in float32

    # Row 1 repeated and back after 3 steps; row 3 back after 1; rows 0, 4-6, 8, 9 never seen.
    for step, rows in enumerate([[1, 3, 1], [3, 7], [2], [2], [1, 1, 1, 2, 3]], start=1):
        values = rng.normal(size=(len(rows), 4)).astype("float32")
        optimizer.apply([tf.IndexedSlices(values, tf.constant(rows), tf.constant([10, 4]))], [table])
        summed = {}
        for row, value in zip(rows, values):
            summed[row] = summed.get(row, 0) + value.astype("float64")
        lazy_adamw_rows(weights, first, second, last, summed, step, 0.05, 0.3, optimizer)
        check_against_the_reference()
    untouched = [0, 4, 5, 6, 8, 9]
    np.testing.assert_array_equal(table.numpy()[untouched], start[untouched])
    assert not np.allclose(table.numpy()[[1, 2, 3, 7]], start[[1, 2, 3, 7]])

    # When `fit` ends, every row takes the steps it missed: row 7's three, the unseen rows' five.
    optimizer.finalize_variable_values([table])
    step_size = 0.05 * np.sqrt(1 - optimizer.beta_2**5) / (1 - optimizer.beta_1**5)
    missed = [5 - last[row] for row in range(10)]
    catch_up_rows(weights, first, second, range(10), missed, step_size, 1 - 0.05 * 0.3, optimizer)
    check_against_the_reference()
    np.testing.assert_allclose(table.numpy()[untouched], start[untouched] * (1 - 0.05 * 0.3) ** 5, rtol=1e-6)
    optimizer.finalize_variable_values([table])  # nothing is left to catch up
    check_against_the_reference()


def test_lazy_sparse_updates_catch_up_with_adamw():
    """With a constant step size (late steps: no bias correction left), a row that skips steps
    ends where AdamW's dense update puts it, to the epsilon term's effect, when it returns and
    when `fit` ends. (Without weight decay: starting at step 10,000, every row would owe 10,000
    steps of it; the numpy reference above checks the decay's catch-up.)"""

    def trained(lazy, dense_gradients, row_batches):
        table = keras.Variable(np.ones((6, 3), "float32"))
        optimizer = FusedAdamW(1e-2, weight_decay=0.0, lazy_sparse_updates=lazy)
        optimizer.build([table])
        optimizer.iterations.assign(10_000)
        rng = np.random.default_rng(2)
        for rows in row_batches:
            values = rng.normal(size=(len(rows), 3)).astype("float32")
            gradient = tf.IndexedSlices(values, tf.constant(rows), tf.constant([6, 3]))
            optimizer.apply([tf.convert_to_tensor(gradient) if dense_gradients else gradient], [table])
        return table, optimizer

    returning = [[0, 1], [1], [1, 2], [1], [1], [0, 1, 2]]  # rows 0 and 2 skip steps and return
    lazy, adamw = trained(True, False, returning)[0].numpy(), trained(False, True, returning)[0].numpy()
    np.testing.assert_allclose(lazy[:3], adamw[:3], rtol=1e-4, atol=1e-6)
    assert not np.allclose(lazy[:3], 1)
    np.testing.assert_array_equal(lazy[3:], adamw[3:])  # rows 3-5: never a gradient, so no momentum

    leaving = [[0, 1, 2], [1], [1, 2], [1], [1], [1]]  # rows 0 and 2 are behind when training ends
    (lazy_table, optimizer), adamw = trained(True, False, leaving), trained(False, True, leaving)[0].numpy()
    assert not np.allclose(lazy_table.numpy()[[0, 2]], adamw[[0, 2]], rtol=1e-4, atol=1e-6)
    optimizer.finalize_variable_values([lazy_table])
    np.testing.assert_allclose(lazy_table.numpy(), adamw, rtol=1e-4, atol=1e-6)


def test_lazy_sparse_updates_leave_dense_gradients_to_adamw():
    def optimizer(kind, **lazy):
        return kind(schedule(), weight_decay=0.1, **lazy)

    lazy = trained_weights(optimizer(FusedAdamW, lazy_sparse_updates=True))
    fused, initial = trained_weights(optimizer(FusedAdamW)), trained_weights(keras.optimizers.SGD(0.0))
    untouched = slice(30, 50)  # no token id reaches these rows: only decayed, when `fit` ends
    end_decay = 1 - float(schedule()(12)) * 0.1  # at the last step's learning rate, 1e-3
    np.testing.assert_allclose(lazy[0][untouched], initial[0][untouched] * end_decay**12, rtol=1e-6)
    assert not np.allclose(fused[0][untouched], initial[0][untouched])
    assert not np.allclose(lazy[0][:30], initial[0][:30])
    # A dense layer takes AdamW's update either way; its weights differ only through the embedding's.
    lazy_dense_only = FusedAdamW(1e-2, lazy_sparse_updates=True)
    dense = keras.Variable(np.ones((3, 2), "float32"))
    lazy_dense_only.apply([tf.ones((3, 2))], [dense])
    reference, same_start = FusedAdamW(1e-2), keras.Variable(np.ones((3, 2), "float32"))
    reference.apply([tf.ones((3, 2))], [same_start])
    np.testing.assert_array_equal(dense.numpy(), same_start.numpy())


def test_finetuning_optimizer_updates_lazily_where_the_step_is_not_xla_compiled(monkeypatch):
    optimizer = finetuning_optimizer(1e-3)  # a CPU: no XLA
    assert isinstance(optimizer, FusedAdamW) and optimizer.lazy_sparse_updates
    monkeypatch.setattr(training, "use_xla", lambda: True)  # as on a GPU
    assert not finetuning_optimizer(1e-3).lazy_sparse_updates


def test_compile_classifier_trains_with_the_optimizer_it_is_given():
    optimizer = keras.optimizers.SGD(0.5)
    classifier = compile_classifier(small_classifier(), optimizer)
    assert classifier.optimizer is optimizer and classifier.loss == "binary_crossentropy"
    before = classifier.get_layer("out").get_weights()[0].copy()
    ids, labels = data()
    classifier.fit(ids, labels, epochs=1, verbose=0)
    assert optimizer.iterations.numpy() > 0
    assert not np.array_equal(before, classifier.get_layer("out").get_weights()[0])


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

lazy = sys.argv[1] == "lazy"
with data_parallel("local") as replicas:
    mirrored = trained_weights(FusedAdamW(1e-2, lazy_sparse_updates=lazy))
one_device = trained_weights(FusedAdamW(1e-2, lazy_sparse_updates=True) if lazy else DenseGradientAdamW(1e-2))
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


@pytest.mark.parametrize("updates", ["dense", "lazy"])
def test_fused_adamw_under_a_mirrored_strategy_matches_one_device(updates, run_under_backend):
    result = run_under_backend(MIRRORED, "tensorflow", updates)
    assert result["replicas"] == 2 and result["difference"] < 1e-5, result


def test_fused_adamw_is_keras_adamw_on_jax(run_under_backend):
    assert run_under_backend(ON_JAX, "jax") == {"backend": "jax", "same": True}


def test_fused_adamw_round_trips_through_its_config_and_a_saved_model(tmp_path):
    optimizer = FusedAdamW(2e-3, weight_decay=0.01, beta_2=0.98, lazy_sparse_updates=True)
    restored = FusedAdamW.from_config(optimizer.get_config())
    assert restored.get_config() == optimizer.get_config()
    model = small_classifier()
    model.compile(loss="binary_crossentropy", optimizer=optimizer)
    ids, labels = data()
    model.fit(ids, labels, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(loaded.optimizer, FusedAdamW) and loaded.optimizer.weight_decay == 0.01
    assert loaded.optimizer.lazy_sparse_updates
    assert len(loaded.optimizer.variables) == len(model.optimizer.variables)  # the rows' last steps too
    for saved, kept in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(saved, kept)

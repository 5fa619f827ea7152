"""In-model masking and data parallelism under each Keras backend.

The backend is fixed when Keras is imported, so every backend case runs a small script in a
fresh Python process with `KERAS_BACKEND` set; the script prints one JSON line of results.
"""

import importlib.util
import textwrap

import numpy as np
import pytest

MASK_ID = 4
UNSELECTABLE = (0, 2, 3)  # [PAD], [CLS], [SEP]

# PyTorch is not a dependency (its wheel brings gigabytes of CUDA libraries); test it where present.
needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="torch is not installed (not a dependency)"
)

# Shared by the scripts: seeded token ids shaped like tokenized text, and a tiny model.
PREAMBLE = """
import json, sys
import numpy as np
import keras
from nbhelpers.masking import SelfMaskingMLM
from nbhelpers.models import build_encoder, build_pretraining_model

def token_ids(n, length, seed, vocabulary=200):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocabulary, size=(n, length)).astype("int32")
    ends = rng.integers(3, length + 1, size=n)  # [CLS] text [SEP], then padding
    ids[np.arange(length)[None, :] >= ends[:, None]] = 0
    ids[np.arange(n), ends - 1] = 3
    ids[:, 0] = 2
    return ids

def tiny_model(predictions, seed, mask_rate=0.2, vocabulary=200, length=16):
    encoder = build_encoder(vocabulary, length, num_layers=1, model_dim=16, num_heads=2,
                            intermediate_dim=32, dropout=0.0)
    model = SelfMaskingMLM(build_pretraining_model(encoder, predictions), mask_token_id=4,
                           unselectable_ids=(0, 2, 3), mask_rate=mask_rate, seed=seed)
    return encoder, model
"""


@pytest.fixture
def run_script(run_under_backend, tmp_path):
    """`run(body, backend, **env)`: `PREAMBLE + body` under `backend` in a new process, with
    `tmp_path` as its `sys.argv[1]`; the JSON of its last line, which names the backend it ran."""

    def run(body, backend, **env):
        result = run_under_backend(PREAMBLE + textwrap.dedent(body), backend, tmp_path, **env)
        assert result["backend"] == backend
        return result

    return run


TRAIN = """
keras.utils.set_random_seed(0)
ids = token_ids(64, 16, seed=0, vocabulary=40)  # few distinct tokens: quick to learn
encoder, model = tiny_model(predictions=4, seed=1)
model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=JIT)
before = [np.array(w) for w in encoder.get_weights()]
history = model.fit(ids, batch_size=16, epochs=4, validation_data=(ids[:16],), verbose=0).history
changed = any(not np.allclose(a, b) for a, b in zip(before, encoder.get_weights()))
path = sys.argv[1] + "/encoder.keras"
encoder.save(path)
reloaded = keras.saving.load_model(path)
difference = np.max(np.abs(np.asarray(reloaded.predict(ids[:8], verbose=0))
                           - np.asarray(encoder.predict(ids[:8], verbose=0))))
# Resuming from save_weights (as BackupAndRestore does) restores the masks' seed state too.
model.save_weights(sys.argv[1] + "/model.weights.h5")
_, resumed = tiny_model(predictions=4, seed=1)
resumed(ids[:2])  # builds it (and draws once)
resumed.load_weights(sys.argv[1] + "/model.weights.h5")
print(json.dumps({"backend": keras.backend.backend(), "history": history, "changed": changed,
                  "difference": float(difference),
                  "seed_state": [np.asarray(m.seed_generator.state.value).tolist() for m in (model, resumed)]}))
"""


@pytest.mark.parametrize(
    "backend, jit", [("jax", True), ("tensorflow", False), pytest.param("torch", False, marks=needs_torch)]
)
def test_training_with_in_model_masking_learns_and_the_encoder_saves(backend, jit, run_script):
    result = run_script(TRAIN.replace("JIT", str(jit)), backend)
    history = result["history"]
    assert sorted(history) == ["loss", "sparse_categorical_accuracy", "val_loss", "val_sparse_categorical_accuracy"]
    assert np.all(np.isfinite(history["loss"] + history["val_loss"]))
    assert history["loss"][-1] < history["loss"][0] - 0.3, history["loss"]
    assert result["changed"]
    assert result["difference"] < 1e-5
    # 4 epochs x 4 steps x 3 draws (validation draws too: 4 x 3 more), all restored on resume.
    assert result["seed_state"] == [[1, 60], [1, 60]]


MASKS = """
ids = token_ids(1024, 64, seed=1)
_, model = tiny_model(predictions=8, seed=3, length=64)
first, second = model.mask(ids), model.mask(ids)
_, same_seed = tiny_model(predictions=8, seed=3, length=64)
again = same_seed.mask(ids)
np.savez(sys.argv[1] + "/masks.npz", ids=ids, **{k: np.asarray(v) for k, v in first.items()})
print(json.dumps({
    "backend": keras.backend.backend(),
    "repeats": all(np.array_equal(first[k], again[k]) for k in first),
    "new_each_call": not np.array_equal(first["mask_positions"], second["mask_positions"]),
}))
"""


def _shares(token_ids, positions, targets, weights):
    """Mean chosen position; shares of chosen tokens that became [MASK], stayed, became random."""
    chosen = weights > 0
    inputs = np.take_along_axis(token_ids, positions, 1)[chosen]
    targets = targets[chosen]
    masked, kept = inputs == MASK_ID, inputs == targets
    return np.mean(positions[chosen]), np.mean(masked), np.mean(kept), np.mean(~masked & ~kept)


@pytest.mark.parametrize("backend", ["jax", "tensorflow", pytest.param("torch", marks=needs_torch)])
def test_in_model_masks_follow_the_rule_and_match_keras_hub(backend, run_script, tmp_path):
    import keras_hub
    import tensorflow as tf

    result = run_script(MASKS, backend)
    assert result["repeats"] and result["new_each_call"]
    ours = dict(np.load(tmp_path / "masks.npz"))
    ids = ours.pop("ids")
    weights = ours["mask_weights"]

    # Exactly ceil(rate x selectable) per sequence, at most predictions_per_sequence ...
    selectable = (~np.isin(ids, UNSELECTABLE)).sum(1)
    np.testing.assert_array_equal(weights.sum(1), np.minimum(np.ceil(0.2 * selectable), 8))
    assert weights.sum(1).max() == 8 and weights.sum(1).min() >= 1
    # ... never a special token, distinct sorted positions, the right answers, the rest untouched.
    chosen = weights > 0
    positions = ours["mask_positions"]
    originals = np.take_along_axis(ids, positions, 1)
    assert not np.isin(originals[chosen], UNSELECTABLE).any()
    for row_positions, row_chosen in zip(positions, chosen):
        used = row_positions[row_chosen]
        assert np.all(np.diff(used) > 0) and np.all(row_positions[~row_chosen] == 0)
    np.testing.assert_array_equal(ours["mask_ids"], np.where(chosen, originals, 0))
    rows, slots = np.nonzero(chosen)
    untouched = np.ones_like(ids, bool)
    untouched[rows, positions[rows, slots]] = False
    np.testing.assert_array_equal(ours["token_ids"][untouched], ids[untouched])

    # The same counts and shares as keras-hub's generator (run in tf.data, as in the guide).
    reference = keras_hub.layers.MaskedLMMaskGenerator(
        vocabulary_size=200, mask_selection_rate=0.2, mask_token_id=MASK_ID,
        mask_selection_length=8, unselectable_token_ids=list(UNSELECTABLE),
    )
    expected = {k: np.asarray(v) for k, v in next(iter(tf.data.Dataset.from_tensors(ids).map(reference))).items()}
    np.testing.assert_array_equal(weights.sum(1), expected["mask_weights"].sum(1))
    ours_shares = _shares(ours["token_ids"], positions, ours["mask_ids"], weights)
    reference_shares = _shares(expected["token_ids"], expected["mask_positions"], expected["mask_ids"], expected["mask_weights"])
    mean_position, masked, kept, random = ours_shares
    assert abs(masked - 0.8) < 0.03 and abs(kept - 0.1) < 0.025 and abs(random - 0.1) < 0.025, ours_shares
    # keras-hub's draws are not seeded: the margins are about 4 standard errors of the difference.
    assert np.all(np.abs(np.subtract(ours_shares, reference_shares)) < [1.0, 0.03, 0.025, 0.025]), (
        ours_shares, reference_shares)


DATA_PARALLEL = """
from nbhelpers.distribution import data_parallel

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

    # Two logical CPUs stand in for two GPUs (before TensorFlow starts its runtime).
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    devices = len(tf.config.list_logical_devices("CPU"))
else:
    import jax

    devices = len(jax.devices())
keras.utils.set_random_seed(0)
ids = token_ids(64, 16, seed=0, vocabulary=40)
with data_parallel("local") as replicas:
    encoder, model = tiny_model(predictions=4, seed=1)
    model.compile(optimizer="adam")  # jit_compile="auto": XLA on both backends
    history = model.fit(ids, batch_size=16, epochs=1, verbose=0).history
    if keras.backend.backend() == "tensorflow":
        split = {"strategy": type(model.distribute_strategy).__name__,
                 "replicas_in_sync": model.distribute_strategy.num_replicas_in_sync}
    else:
        split = {"distribution": type(keras.distribution.distribution()).__name__,
                 "variable_devices": len(encoder.weights[0].value.sharding.device_set)}
print(json.dumps({"backend": keras.backend.backend(), "devices": devices, "replicas": replicas,
                  "loss": history["loss"], **split}))
"""


def test_data_parallel_on_jax_splits_batches_over_two_cpu_devices(run_script):
    result = run_script(DATA_PARALLEL, "jax", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    assert result["devices"] == 2 and result["replicas"] == 2
    assert result["distribution"] == "DataParallel" and result["variable_devices"] == 2
    assert np.isfinite(result["loss"]).all()


def test_data_parallel_on_tensorflow_mirrors_over_two_logical_cpus(run_script):
    result = run_script(DATA_PARALLEL, "tensorflow")
    assert result["devices"] == 2 and result["replicas"] == 2
    assert result["strategy"] == "MirroredStrategy" and result["replicas_in_sync"] == 2
    assert np.isfinite(result["loss"]).all()


# One training step of notebook 03's MLM model and of notebook 04's classifier (their compile
# settings), split over two devices and on one device with the same global batch.
ONE_STEP = """
import json, sys
import numpy as np
import keras
from nbhelpers.distribution import data_parallel, global_batch_size
from nbhelpers.metrics import MaskedTokenAccuracy
from nbhelpers.models import build_classifier, build_encoder, build_pretraining_model
from nbhelpers.training import compile_classifier, finetuning_optimizer, use_xla

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

    # Two logical CPUs stand in for two GPUs (before TensorFlow starts its runtime).
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

PER_DEVICE, VOCABULARY, LENGTH, PREDICTIONS = 8, 50, 16, 4
rng = np.random.default_rng(0)


def one_step(kind, model_kind):
    # The weights after one step with PER_DEVICE examples per replica, the replicas, the steps
    # taken and how far the step moved the weights.
    with data_parallel(kind) as replicas:
        batch = global_batch_size(PER_DEVICE, replicas)
        keras.utils.set_random_seed(0)
        encoder = build_encoder(VOCABULARY, LENGTH, num_layers=1, model_dim=16, num_heads=2, intermediate_dim=32, dropout=0.0)
        if model_kind == "pretrainer":  # notebook 03's model and compile
            model = build_pretraining_model(encoder, PREDICTIONS)
            before = [np.array(w) for w in model.get_weights()]
            model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.AdamW(1e-2),
                          weighted_metrics=[MaskedTokenAccuracy(name="sparse_categorical_accuracy")], jit_compile=use_xla())
            x = {"token_ids": ids[:batch], "mask_positions": positions[:batch]}
            model.fit(x, targets[:batch], sample_weight=weights[:batch], batch_size=batch, epochs=1, verbose=0)
        else:  # notebook 04's
            model = compile_classifier(build_classifier(encoder), finetuning_optimizer(1e-2))
            before = [np.array(w) for w in model.get_weights()]
            model.fit(ids[:batch], labels[:batch], batch_size=batch, epochs=1, verbose=0)
        after = [np.asarray(w) for w in model.get_weights()]
        return after, replicas, int(keras.ops.convert_to_numpy(model.optimizer.iterations)), max(float(np.abs(a - b).max()) for a, b in zip(before, after))


ids = rng.integers(5, VOCABULARY, size=(16, LENGTH)).astype("int32")
ids[:, 12:] = 0  # padding
positions = np.sort(rng.permuted(np.tile(np.arange(1, 12), (16, 1)), axis=1)[:, :PREDICTIONS], axis=1).astype("int32")
targets = rng.integers(5, VOCABULARY, size=(16, PREDICTIONS)).astype("int32")
weights = (rng.random((16, PREDICTIONS)) < 0.8).astype("float32")
labels = rng.integers(0, 2, size=16).astype("float32")
result = {"backend": keras.backend.backend()}
for model_kind in ("pretrainer", "classifier"):
    split, replicas, steps, _ = one_step("local", model_kind)
    # One device with the same global batch: twice the per-device batch.
    PER_DEVICE *= replicas
    alone, _, _, changed = one_step("none", model_kind)
    PER_DEVICE //= replicas
    result[model_kind] = {"replicas": replicas, "steps": steps,
                          "difference": max(float(np.abs(a - b).max()) for a, b in zip(split, alone)),
                          "changed": changed}
print(json.dumps(result))
"""


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_a_step_on_every_local_device_matches_one_device_with_the_same_global_batch(backend, run_under_backend):
    result = run_under_backend(ONE_STEP, backend, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    assert result["backend"] == backend
    for model in ("pretrainer", "classifier"):
        step = result[model]
        assert step["replicas"] == 2 and step["steps"] == 1, (model, step)
        # The step moved weights by about the learning rate; the two ways agree to float rounding.
        assert step["changed"] > 1e-3 and step["difference"] < 2e-5, (model, step)


def test_local_on_one_device_warns_in_one_line_and_trains_there(capsys):
    import keras

    from nbhelpers.distribution import data_parallel

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        devices = len(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))
    else:
        import jax

        devices = jax.device_count()
    if devices > 1:
        pytest.skip(f"this process sees {devices} devices")
    with data_parallel("local") as replicas:
        assert replicas == 1
    warning = capsys.readouterr().err
    assert warning.startswith("Warning: DISTRIBUTION = 'local' found one device on this machine (")
    assert warning.endswith("training on it alone.\n") and warning.count("\n") == 1


def test_the_global_batch_is_the_per_device_batch_on_every_replica():
    from nbhelpers.distribution import global_batch_size

    assert global_batch_size(64, 8) == 512 and global_batch_size(32, 1) == 32
    with pytest.raises(ValueError, match="A batch of 0 on 2 replicas: both must be at least 1"):
        global_batch_size(0, 2)


def test_data_parallel_none_changes_nothing_and_unknown_kinds_are_refused():
    import keras

    from nbhelpers.distribution import data_parallel

    with data_parallel("none") as replicas:
        assert replicas == 1 and keras.distribution.distribution() is None
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            assert not tf.distribute.has_strategy()
    with pytest.raises(ValueError, match=r"Unknown data-parallel kind 'mirror': choose one of \['none', 'local', 'multi_worker'\]"):
        data_parallel("mirror")


SETTINGS = """
from nbhelpers.training import set_precision, use_xla
print(json.dumps({"backend": keras.backend.backend(), "xla": use_xla(), "precision": set_precision("auto")}))
"""


def test_the_training_settings_ask_the_active_backend(run_script):
    """Under JAX: steps are always XLA-compiled and "auto" precision asks JAX (not TensorFlow) for a GPU."""
    result = run_script(SETTINGS, "jax")
    assert {key: result[key] for key in ("xla", "precision")} == {"xla": True, "precision": "float32"}

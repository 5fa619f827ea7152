"""MaskedTokenAccuracy: with and without an ignored target, and against Keras's own accuracy."""

import keras
import numpy as np
import pytest

from nbhelpers.metrics import MaskedTokenAccuracy
from nbhelpers.models import build_encoder, build_pretraining_model


@pytest.fixture
def encoder(hand_vocabulary):
    keras.utils.set_random_seed(0)
    return build_encoder(vocabulary_size=len(hand_vocabulary), sequence_length=16, num_layers=2, model_dim=16,
                         num_heads=2, intermediate_dim=32, dropout=0.1)


def test_masked_token_accuracy_leaves_out_an_ignored_target_and_reloads():
    from nbhelpers.metrics import MaskedTokenAccuracy

    metric = MaskedTokenAccuracy(ignore_id=1, name="known_token_accuracy")
    one_hot = np.eye(6, dtype="float32")
    # Targets: [UNK] (predicted right), 5 (right), 3 (wrong), 4 (right but weight 0).
    metric.update_state([[1, 5, 3, 4]], one_hot[[[1, 5, 2, 4]]], [[1.0, 1.0, 1.0, 0.0]])
    assert float(metric.result()) == pytest.approx(0.5)
    plain = keras.metrics.SparseCategoricalAccuracy()
    plain.update_state([[1, 5, 3, 4]], one_hot[[[1, 5, 2, 4]]], [[1.0, 1.0, 1.0, 0.0]])
    assert float(plain.result()) == pytest.approx(2 / 3)  # the [UNK] hit flatters the plain figure
    restored = MaskedTokenAccuracy.from_config(metric.get_config())
    assert restored.ignore_id == 1 and restored.name == "known_token_accuracy"


def test_masked_token_accuracy_equals_keras_sparse_categorical_accuracy_in_training(encoder):
    """Logged side by side in `fit` (weighted, as notebook 03 logs them): the same value every step."""
    from nbhelpers.metrics import MaskedTokenAccuracy

    rng = np.random.default_rng(0)
    scores = keras.ops.softmax(rng.normal(size=(3, 7, 40)).astype("float32"))
    targets = np.argmax(np.asarray(scores), axis=-1)
    targets[:, ::2] = rng.integers(0, 40, size=targets[:, ::2].shape)  # about half right
    weights = rng.integers(0, 2, size=(3, 7)).astype("float32")
    ours, keras_own = MaskedTokenAccuracy(), keras.metrics.SparseCategoricalAccuracy()
    for metric in (ours, keras_own):
        metric.update_state(targets, scores, weights)
    assert 0.2 < float(keras_own.result()) < 0.9
    assert float(ours.result()) == pytest.approx(float(keras_own.result()), abs=1e-7)

    pretrainer = build_pretraining_model(encoder, predictions_per_sequence=2)
    pretrainer.compile(loss="sparse_categorical_crossentropy", optimizer="adam",
                       weighted_metrics=["sparse_categorical_accuracy", MaskedTokenAccuracy(name="ours")])
    inputs = {"token_ids": np.pad(np.array([[5, 6, 7, 8], [9, 10, 11, 12]] * 4, "int32"), ((0, 0), (0, 12))),
              "mask_positions": np.array([[0, 1], [2, 3]] * 4, "int32")}
    history = pretrainer.fit(inputs, np.array([[5, 6], [11, 9]] * 4, "int32"), sample_weight=np.ones((8, 2), "float32"),
                             batch_size=2, epochs=6, verbose=0).history
    np.testing.assert_allclose(history["ours"], history["sparse_categorical_accuracy"], atol=1e-6)
    assert max(history["ours"]) > 0

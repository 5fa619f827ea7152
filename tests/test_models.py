import keras
import numpy as np
import pytest
import tensorflow as tf

from nbhelpers.models import EMBEDDING_LAYER, build_classifier, build_encoder, build_pretraining_model

SMALL = dict(sequence_length=16, num_layers=2, model_dim=16, num_heads=2, intermediate_dim=32, dropout=0.1)


@pytest.fixture
def encoder(hand_vocabulary):
    keras.utils.set_random_seed(0)
    return build_encoder(vocabulary_size=len(hand_vocabulary), **SMALL)


def _ids(rows, length=16):
    out = np.zeros((len(rows), length), "int32")
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def test_the_guide_sized_encoder_has_4_5_million_parameters():
    encoder = build_encoder(30522, 128, num_layers=3, model_dim=128, num_heads=2, intermediate_dim=512, dropout=0.1)
    assert 4.4e6 < encoder.count_params() < 4.6e6


def test_mlm_head_shares_the_token_embedding_matrix(encoder, hand_vocabulary):
    pretrainer = build_pretraining_model(encoder, predictions_per_sequence=3)
    embedding = encoder.get_layer(EMBEDDING_LAYER).token_embedding
    head = pretrainer.get_layer("mlm_head")
    assert head.token_embedding is embedding
    # No second vocabulary-by-width matrix anywhere in the model.
    vocab_sized = [w for w in pretrainer.weights if len(w.shape) == 2 and len(hand_vocabulary) in w.shape]
    assert len(vocab_sized) == 1
    inputs = {"token_ids": _ids([[5, 6, 7, 8]]), "mask_positions": np.array([[0, 1, 2]], "int32")}
    before = np.asarray(pretrainer(inputs))
    embedding.embeddings.assign(embedding.embeddings * 2.0)  # Changing the embedding changes the output layer too.
    assert not np.allclose(before, np.asarray(pretrainer(inputs)))
    assert before.shape == (1, 3, len(hand_vocabulary))
    np.testing.assert_allclose(before.sum(axis=-1), 1.0, rtol=1e-5)


def test_padding_does_not_change_the_encoding_or_the_prediction(encoder):
    classifier = build_classifier(encoder)
    short = np.array([[5, 6, 7, 0]], "int32")
    long = _ids([[5, 6, 7]])
    encoded_short = np.asarray(encoder(short))[0, :3]
    encoded_long = np.asarray(encoder(long))[0, :3]
    np.testing.assert_allclose(encoded_short, encoded_long, atol=1e-5)
    np.testing.assert_allclose(np.asarray(classifier(short)), np.asarray(classifier(long)), atol=1e-6)


@pytest.mark.parametrize("which", ["encoder", "classifier"])
def test_saved_models_reload_with_identical_outputs(encoder, which, tmp_path):
    model = encoder if which == "encoder" else build_classifier(encoder)
    inputs = _ids([[5, 6, 7, 8], [9, 10], []])
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(np.asarray(model(inputs)), np.asarray(reloaded(inputs)))
    assert np.isfinite(np.asarray(reloaded(inputs))).all()


def test_pretraining_weights_reload_into_a_fresh_model_still_tied(encoder, hand_vocabulary, tmp_path):
    pretrainer = build_pretraining_model(encoder, 3)
    inputs = {"token_ids": _ids([[5, 6, 7, 8], [9, 10]]), "mask_positions": np.array([[0, 1, 2], [0, 1, 1]], "int32")}
    pretrainer.save_weights(tmp_path / "pretrainer.weights.h5")
    fresh = build_pretraining_model(build_encoder(vocabulary_size=len(hand_vocabulary), **SMALL), 3)
    fresh.load_weights(tmp_path / "pretrainer.weights.h5")
    np.testing.assert_array_equal(np.asarray(pretrainer(inputs)), np.asarray(fresh(inputs)))
    assert fresh.get_layer("mlm_head").token_embedding is fresh.get_layer("encoder").get_layer(EMBEDDING_LAYER).token_embedding


def test_the_warmup_cosine_schedule_rises_to_the_peak_and_ends_at_zero():
    from nbhelpers.training import learning_rate

    assert learning_rate(5e-4, "constant", 100) == 5e-4
    rate = learning_rate(1e-3, "warmup_cosine", total_steps=1000)
    values = [float(rate(step)) for step in range(0, 1001, 10)]
    assert values[0] == 0 and max(values) == pytest.approx(1e-3) and values[-1] == pytest.approx(0, abs=1e-9)
    peak = values.index(max(values))
    assert values[:peak + 1] == sorted(values[:peak + 1]) and values[peak:] == sorted(values[peak:], reverse=True)
    with pytest.raises(ValueError, match="warmup_cosine"):
        learning_rate(1e-3, "cyclic", 10)


def test_a_pre_layer_norm_encoder_ends_with_a_norm_and_reloads(hand_vocabulary, tmp_path):
    keras.utils.set_random_seed(0)
    encoder = build_encoder(vocabulary_size=len(hand_vocabulary), normalize_first=True, **SMALL)
    assert encoder.get_layer("final_norm") is not None
    assert all(encoder.get_layer(f"transformer_{i}").normalize_first for i in range(SMALL["num_layers"]))
    inputs = _ids([[5, 6, 7, 8], [9, 10]])
    encoder.save(tmp_path / "encoder.keras")
    reloaded = keras.models.load_model(tmp_path / "encoder.keras")
    np.testing.assert_array_equal(np.asarray(encoder(inputs)), np.asarray(reloaded(inputs)))


def test_a_time_budget_becomes_steps_measured_without_changing_the_weights(encoder):
    from nbhelpers.training import seconds_per_step, steps_for_minutes

    pretrainer = build_pretraining_model(encoder, predictions_per_sequence=2)
    inputs = {"token_ids": _ids([[5, 6, 7, 8]] * 4), "mask_positions": np.array([[0, 1]] * 4, "int32")}
    batch = (inputs, np.array([[5, 6]] * 4, "int32"), np.ones((4, 2), "float32"))
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    before = [w.copy() for w in pretrainer.get_weights()]
    seconds = seconds_per_step(pretrainer, dataset, "sparse_categorical_crossentropy", steps=3, warmup_steps=1)
    assert 0 < seconds < 5
    for old, new in zip(before, pretrainer.get_weights()):
        np.testing.assert_array_equal(old, new)
    # Ten minutes at 0.2 s per step, less ten evaluations of 30 batches at a third of a step.
    assert steps_for_minutes(10, 0.2, evaluations=10, validation_batches=30) == int((600 - 10 * 30 * 0.2 / 3) / 0.2)
    assert steps_for_minutes(0.001, 1.0, evaluations=10, validation_batches=30) == 10  # at least one per evaluation


def test_a_resumed_time_budget_keeps_the_first_runs_step_count(tmp_path):
    from nbhelpers.artifacts import write_json
    from nbhelpers.training import saved_step_plan

    config = {"pretrain_minutes": 20.0, "seed": 1}
    assert saved_step_plan(tmp_path / "missing", config) is None
    write_json(tmp_path / "run.json", {**config, "planned_steps": 4321})
    assert saved_step_plan(tmp_path, config) == 4321
    assert saved_step_plan(tmp_path, {**config, "seed": 2}) is None  # another run's plan is not reused

import keras
import numpy as np
import pytest

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


def test_a_pre_layer_norm_encoder_ends_with_a_norm_and_reloads(hand_vocabulary, tmp_path):
    keras.utils.set_random_seed(0)
    encoder = build_encoder(vocabulary_size=len(hand_vocabulary), normalize_first=True, **SMALL)
    assert encoder.get_layer("final_norm") is not None
    assert all(encoder.get_layer(f"transformer_{i}").normalize_first for i in range(SMALL["num_layers"]))
    inputs = _ids([[5, 6, 7, 8], [9, 10]])
    encoder.save(tmp_path / "encoder.keras")
    reloaded = keras.models.load_model(tmp_path / "encoder.keras")
    np.testing.assert_array_equal(np.asarray(encoder(inputs)), np.asarray(reloaded(inputs)))



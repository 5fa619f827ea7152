import keras
import numpy as np
import pytest
import tensorflow as tf

from nbhelpers.baseline import build_baseline_model, make_multi_hot_vectorizer, multi_hot_dataset
from nbhelpers.export import build_text_model, load_text_model, predict_texts
from nbhelpers.models import EMBEDDING_LAYER, build_classifier, build_encoder, build_pretraining_model
from nbhelpers.tokenization import make_tokenizer

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


def test_baseline_round_trip_and_shapes(tmp_path):
    sentences, labels = ["a good film", "a bad film", "good good", "bad"], [1, 0, 1, 0]
    vectorizer = make_multi_hot_vectorizer(sentences, max_tokens=10)
    model = build_baseline_model(vectorizer.vocabulary_size())
    x, y = next(iter(multi_hot_dataset(vectorizer, sentences, labels, batch_size=4)))
    assert x.shape == (4, vectorizer.vocabulary_size()) and set(np.unique(x)) <= {0, 1}
    model.save(tmp_path / "baseline.keras")
    np.testing.assert_array_equal(model(x), keras.models.load_model(tmp_path / "baseline.keras")(x))


def test_text_model_reads_raw_strings_and_reloads_identically(encoder, hand_vocabulary, tmp_path):
    tokenizer = make_tokenizer(hand_vocabulary, sequence_length=16)
    text_model = build_text_model(tokenizer, build_classifier(encoder))
    texts = ["The film was good.", "not a good film", "", "ünknown wörds only"]
    probabilities = predict_texts(text_model, texts)
    np.testing.assert_allclose(predict_texts(text_model, texts, batch_size=3), probabilities, atol=1e-6)
    assert probabilities.shape == (4,) and ((0 <= probabilities) & (probabilities <= 1)).all()
    text_model.save(tmp_path / "sentiment.keras")
    reloaded = load_text_model(tmp_path / "sentiment.keras")
    np.testing.assert_array_equal(probabilities, predict_texts(reloaded, texts))
    np.testing.assert_array_equal(
        np.asarray(reloaded(tf.constant(texts))).reshape(-1), probabilities
    )


def test_top_fill_ins_mask_a_whole_word_and_rank_guesses(encoder, hand_vocabulary):
    from nbhelpers.fill_mask import top_fill_ins

    tokenizer = make_tokenizer(hand_vocabulary, sequence_length=16)
    pretrainer = build_pretraining_model(encoder, 3)
    results = top_fill_ins(pretrainer, tokenizer, ["the film was good .", ". . .", "a bad films"], top_k=4)
    assert [(text, answer) for text, answer, _ in results] == [
        ("the film [MASK] good .", "was"),
        ("a [MASK] film ##s", "bad"),  # "films" is two pieces: the whole word "bad" is masked
    ]
    probabilities = [p for _, _, guesses in results for _, p in guesses]
    assert len(results[0][2]) == 4 and all(0 <= p <= 1 for p in probabilities)
    assert [p for _, p in results[0][2]] == sorted((p for _, p in results[0][2]), reverse=True)


def test_a_pre_layer_norm_encoder_ends_with_a_norm_and_reloads(hand_vocabulary, tmp_path):
    keras.utils.set_random_seed(0)
    encoder = build_encoder(vocabulary_size=len(hand_vocabulary), normalize_first=True, **SMALL)
    assert encoder.get_layer("final_norm") is not None
    assert all(encoder.get_layer(f"transformer_{i}").normalize_first for i in range(SMALL["num_layers"]))
    inputs = _ids([[5, 6, 7, 8], [9, 10]])
    encoder.save(tmp_path / "encoder.keras")
    reloaded = keras.models.load_model(tmp_path / "encoder.keras")
    np.testing.assert_array_equal(np.asarray(encoder(inputs)), np.asarray(reloaded(inputs)))


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
    inputs = {"token_ids": _ids([[5, 6, 7, 8], [9, 10, 11, 12]] * 4),
              "mask_positions": np.array([[0, 1], [2, 3]] * 4, "int32")}
    history = pretrainer.fit(inputs, np.array([[5, 6], [11, 9]] * 4, "int32"), sample_weight=np.ones((8, 2), "float32"),
                             batch_size=2, epochs=6, verbose=0).history
    np.testing.assert_allclose(history["ours"], history["sparse_categorical_accuracy"], atol=1e-6)
    assert max(history["ours"]) > 0


def test_shuffled_passes_run_whole_passes_end_to_end_in_seeded_orders():
    from nbhelpers.training import shuffled_passes

    order = shuffled_passes(10, 25, seed=3)
    assert len(order) == 25
    assert sorted(order[:10]) == sorted(order[10:20]) == list(range(10))  # whole passes, each a permutation
    assert list(order[:10]) != list(order[10:20])  # each in its own order
    np.testing.assert_array_equal(order, shuffled_passes(10, 25, seed=3))

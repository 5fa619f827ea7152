"""The raw-text model that notebook 05 exports."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nbhelpers.baseline import build_baseline_model, build_text_baseline, make_multi_hot_vectorizer
from nbhelpers.export import average_text_models, build_text_model, export_saved_model, load_text_model, predict_texts
from nbhelpers.models import build_classifier, build_encoder
from nbhelpers.tokenization import make_tokenizer


@pytest.fixture
def encoder(hand_vocabulary):
    keras.utils.set_random_seed(0)
    return build_encoder(vocabulary_size=len(hand_vocabulary), sequence_length=16, num_layers=2, model_dim=16,
                         num_heads=2, intermediate_dim=32, dropout=0.1)


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


def test_the_mean_of_a_transformer_and_a_bag_of_words_saves_and_serves_as_one_model(encoder, hand_vocabulary, tmp_path):
    tokenizer = make_tokenizer(hand_vocabulary, sequence_length=16)
    transformer = build_text_model(tokenizer, build_classifier(encoder))
    vectorizer = make_multi_hot_vectorizer(["a good film", "a bad film", "not good"], max_tokens=20)
    baseline = build_baseline_model(vectorizer.vocabulary_size())
    baseline.set_weights([np.linspace(-2, 2, vectorizer.vocabulary_size()).reshape(-1, 1).astype("float32"),
                          np.array([0.3], "float32")])  # a bag of words whose answers differ by sentence
    bag_of_words = build_text_baseline(vectorizer, baseline)
    both = average_text_models([transformer, bag_of_words])
    texts = ["The film was good.", "not a good film", "", "ünknown wörds only"]
    parts = [predict_texts(transformer, texts), predict_texts(bag_of_words, texts)]
    assert not np.allclose(*parts)  # two different answers, so the mean is a real check
    probabilities = predict_texts(both, texts)
    np.testing.assert_allclose(probabilities, (parts[0] + parts[1]) / 2, atol=1e-6)
    both.save(tmp_path / "sentiment.keras")
    np.testing.assert_array_equal(predict_texts(load_text_model(tmp_path / "sentiment.keras"), texts), probabilities)
    export_saved_model(both, tmp_path / "saved_model")
    np.testing.assert_allclose(predict_texts(tf.saved_model.load(str(tmp_path / "saved_model")), texts), probabilities, atol=1e-6)
    with pytest.raises(ValueError, match="two or more"):
        average_text_models([transformer])

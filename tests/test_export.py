"""The raw-text model that notebook 05 exports."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nbhelpers.export import build_text_model, load_text_model, predict_texts
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

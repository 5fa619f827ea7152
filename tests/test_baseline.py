"""The bag-of-words baseline: its model, its multi-hot vectors with and without TensorFlow."""

import keras
import numpy as np
import pytest

from nbhelpers.baseline import build_baseline_model, make_multi_hot_vectorizer
from nbhelpers.batches import multi_hot_dataset


def test_baseline_round_trip_and_shapes(tmp_path):
    sentences, labels = ["a good film", "a bad film", "good good", "bad"], [1, 0, 1, 0]
    vectorizer = make_multi_hot_vectorizer(sentences, max_tokens=10)
    model = build_baseline_model(vectorizer.vocabulary_size())
    x, y = next(iter(multi_hot_dataset(vectorizer, sentences, labels, batch_size=4)))
    assert x.shape == (4, vectorizer.vocabulary_size()) and set(np.unique(x)) <= {0, 1}
    model.save(tmp_path / "baseline.keras")
    np.testing.assert_array_equal(model(x), keras.models.load_model(tmp_path / "baseline.keras")(x))


@pytest.mark.parametrize("max_tokens", [6, 4000])  # 6: the cut falls among words counted equally often
def test_numpy_multi_hot_vectors_equal_text_vectorizations(max_tokens):
    _compare_multi_hot(SENTENCES[:8], SENTENCES[8:], max_tokens)


def test_numpy_multi_hot_vectors_equal_text_vectorizations_on_real_sst2(shared_data):
    from nbhelpers.data import load_sst2, sample_labelled

    train = sample_labelled(*load_sst2(shared_data, "train"), 2000, seed=0)[0]
    _compare_multi_hot(train, load_sst2(shared_data, "dev")[0], 500)

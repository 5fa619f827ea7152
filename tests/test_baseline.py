"""The bag-of-words baseline: its model, its multi-hot vectors with and without TensorFlow."""

import keras
import numpy as np
import pytest

from nbhelpers.baseline import (
    build_baseline_model, make_multi_hot_vectorizer, multi_hot, multi_hot_columns, sentence_words, split_rows,
)
from nbhelpers.batches import multi_hot_dataset


SENTENCES = [
    "A gripping, heartfelt film!", "the FILM is not dull ... it's wonderful", "Café's crème brûlée -- délicieux",
    "it 's a film , a film , a FILM", "", "   ", "n't", "5 stars / 10 : \"great\"", "wonderful wonderful dull",
    "The soundtrack (by A. R. Rahman) is great; the plot isn't.", "ÉCLAIR and eclair", "tab\tseparated\nlines",
]


def _compare_multi_hot(train, dev, max_tokens):
    words, word_ids, counts = sentence_words(train + dev)
    rows = split_rows(word_ids, counts)
    columns, size = multi_hot_columns(rows[: len(train)], words, max_tokens)
    vectorizer = make_multi_hot_vectorizer(train, max_tokens)
    assert size == vectorizer.vocabulary_size()
    for sentences, part in ((train, rows[: len(train)]), (dev, rows[len(train):])):
        np.testing.assert_array_equal(multi_hot(part, columns, size), np.asarray(vectorizer(sentences)))


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


def test_word_pairs_are_counted_and_survive_the_raw_text_round_trip(tmp_path):
    import tensorflow as tf
    from nbhelpers.baseline import build_text_baseline, load_bag_of_words

    sentences, labels = ["not good", "very good", "not bad", "very bad"], [0, 1, 1, 0]
    words_only = make_multi_hot_vectorizer(sentences, max_tokens=20)
    with_pairs = make_multi_hot_vectorizer(sentences, max_tokens=20, ngrams=2)
    assert "not good" not in words_only.get_vocabulary() and "not good" in with_pairs.get_vocabulary()
    # A pair is a column of its own: "not good" and "good not" share their words, not their pairs.
    a, b = np.asarray(with_pairs(["not good", "good not"]))
    assert a.sum() == b.sum() == 3 and not np.array_equal(a, b)
    np.testing.assert_array_equal(*np.asarray(words_only(["not good", "good not"])))

    model = build_baseline_model(with_pairs.vocabulary_size())
    model.compile(loss="binary_crossentropy", optimizer="adam")
    model.fit(multi_hot_dataset(with_pairs, sentences, labels, batch_size=4), epochs=2, shuffle=False, verbose=0)
    # Saved where notebook 01 saves it, then read back as notebook 05 and the bench read it.
    from nbhelpers.artifacts import publish_artifact, stage_artifact, write_json
    staging = stage_artifact(tmp_path, "01_baseline")
    text_model = build_text_baseline(with_pairs, model)
    text_model.save(staging / "bag_of_words.keras")
    write_json(staging / "config.json", {"baseline_ngrams": 2})
    publish_artifact(staging)
    texts = tf.constant(["not good at all", "very bad", "good"])
    np.testing.assert_allclose(load_bag_of_words(tmp_path)(texts), text_model(texts), atol=1e-6)


def test_word_triples_are_counted_beside_words_and_pairs():
    with_triples = make_multi_hot_vectorizer(["not very good", "very good"], max_tokens=20, ngrams=3)
    vocabulary = {str(entry) for entry in with_triples.get_vocabulary()}
    assert {"good", "very good", "not very", "not very good"} <= vocabulary
    # "not very good": 3 words, 2 pairs, 1 triple, each a column of its own.
    assert np.asarray(with_triples(["not very good"])).sum() == 6


def test_more_than_word_triples_are_refused():
    with pytest.raises(ValueError, match="ngrams = 4"):
        make_multi_hot_vectorizer(["a film"], ngrams=4)

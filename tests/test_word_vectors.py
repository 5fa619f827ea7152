"""Co-occurrence word vectors: words that share contexts get alike vectors; the embedding start."""

import numpy as np
import pytest

from nbhelpers.models import build_encoder
from nbhelpers.word_vectors import cooccurrence_vectors, nearest_words, start_token_embedding

SPECIAL_IDS = [0, 1, 2, 3, 4]


def two_topic_corpus(rows=400, length=16, seed=0):
    """Sequences each drawn from one of two disjoint groups of ids (5-19 and 20-34), [SEP] (3) between."""
    rng = np.random.default_rng(seed)
    groups = [np.arange(5, 20), np.arange(20, 35)]
    corpus = np.stack([rng.choice(groups[row % 2], length) for row in range(rows)])
    corpus[:, length // 2] = 3
    return corpus


def cosine(vectors):
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit @ unit.T


def test_words_that_share_contexts_get_alike_vectors():
    vectors = cooccurrence_vectors(two_topic_corpus(), vocabulary_size=40, dimensions=4, ignore_ids=SPECIAL_IDS)
    assert vectors.shape == (40, 4) and vectors.dtype == np.float32
    similarity = cosine(vectors[5:35])
    group = np.arange(30) < 15
    same = group[:, None] == group[None, :]
    off_diagonal = ~np.eye(30, dtype=bool)
    assert similarity[same & off_diagonal].mean() > 0.8
    assert similarity[~same].mean() < 0.2
    # Ignored and never-seen ids get no vector.
    assert not vectors[SPECIAL_IDS].any() and not vectors[35:].any()


def test_nearest_words_come_from_the_same_group():
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(5, 40)]
    vectors = cooccurrence_vectors(two_topic_corpus(), 40, 4, ignore_ids=SPECIAL_IDS)
    neighbours = nearest_words(vectors, vocabulary, "w7", count=10)
    assert len(neighbours) == 10 and "w7" not in neighbours
    assert all(5 <= int(word[1:]) < 20 for word in neighbours)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        nearest_words(vectors, vocabulary, "w99")
    with pytest.raises(ValueError, match="has no vector"):
        nearest_words(vectors, vocabulary, "[SEP]")


def test_the_vectors_are_seeded():
    corpus = two_topic_corpus()
    first, second = (cooccurrence_vectors(corpus, 40, 4, ignore_ids=SPECIAL_IDS, seed=3) for _ in range(2))
    np.testing.assert_array_equal(first, second)
    # Counting in chunks changes nothing.
    chunked = cooccurrence_vectors(corpus, 40, 4, ignore_ids=SPECIAL_IDS, seed=3, chunk_rows=7)
    np.testing.assert_allclose(np.abs(cosine(chunked[5:35])), np.abs(cosine(first[5:35])), atol=1e-4)


@pytest.mark.parametrize("tokens, vocabulary_size, dimensions, message", [
    (np.zeros(16, int), 40, 4, "sequences, length"),
    (np.full((2, 8), 40), 40, 4, "outside the vocabulary"),
    (two_topic_corpus(), 40, 39, "between 1 and"),
    (np.zeros((4, 8), int), 40, 4, "no two counted tokens"),
])
def test_bad_input_gets_a_clear_error(tokens, vocabulary_size, dimensions, message):
    with pytest.raises(ValueError, match=message):
        cooccurrence_vectors(tokens, vocabulary_size, dimensions, ignore_ids=SPECIAL_IDS)


def test_the_embedding_starts_from_the_vectors_at_its_own_scale():
    encoder = build_encoder(vocabulary_size=40, sequence_length=16, num_layers=1, model_dim=8, num_heads=2,
                            intermediate_dim=16, dropout=0.0)
    table = encoder.get_layer("embedding").token_embedding.embeddings
    before = np.array(table.numpy())
    vectors = cooccurrence_vectors(two_topic_corpus(), 40, 8, ignore_ids=SPECIAL_IDS)
    start_token_embedding(encoder, vectors)
    after = np.array(table.numpy())
    has_vector = vectors.any(axis=1)
    np.testing.assert_array_equal(after[~has_vector], before[~has_vector])  # keep their random start
    np.testing.assert_allclose(after[has_vector] / vectors[has_vector], after[5, 0] / vectors[5, 0], rtol=1e-4)
    assert after[has_vector].std() == pytest.approx(before.std(), rel=1e-4)
    with pytest.raises(ValueError, match="do not fit the token embedding"):
        start_token_embedding(encoder, vectors[:, :4])

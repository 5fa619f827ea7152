"""Word vectors from co-occurrence counts: a start for the token embedding that costs seconds.

Masked-language-model pretraining spends its first minutes on a CPU learning which words are
frequent (the "frequent words" plateau, docs/results/cpu-profile.md) before its embedding
says which words mean alike. Counting which words occur near which, over the same unlabelled
corpus, says that directly: positive pointwise mutual information (PPMI) of each pair of
tokens within a window, reduced by a truncated SVD to the encoder's width, gives vectors in
which "great" sits beside "wonderful" and "excellent" and "boring" beside "dull" and
"predictable" (Levy, Goldberg & Dagan 2015, "Improving distributional similarity with lessons
learned from word embeddings": a 1/distance-weighted window, context counts raised to 0.75,
the singular values' square root as weights). Notebook 03 starts the MLM pretraining from them
(`EMBEDDING_START: cooccurrence`); the counting and the SVD take well under a minute on 2 cores
for the `cpu` profile's 2.6M tokens and are charged to the pretraining budget.

Usage (names as in the notebooks):

    vectors = cooccurrence_vectors(train_tokens, vocabulary_size=8000, dimensions=128, ignore_ids=[0, 1, 2, 3, 4])
    nearest_words(vectors, tokenizer.get_vocabulary(), "great", count=3)
    start_token_embedding(encoder, vectors)  # rows without a vector keep their random start
"""

import keras
import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from nbhelpers.models import EMBEDDING_LAYER

# How notebook 03 may start the token embedding: at random (the guide), or from `cooccurrence_vectors`.
EMBEDDING_STARTS = ("random", "cooccurrence")


def cooccurrence_vectors(token_ids, vocabulary_size, dimensions, window=5, smoothing=0.75, ignore_ids=(), seed=0,
                         chunk_rows=8192):
    """One vector per token id from the PPMI of nearby token pairs, by truncated SVD.

    Args:
        token_ids: `(sequences, length)` int array: the pretraining corpus as notebook 02 wrote it.
        vocabulary_size: how many ids (rows of the result).
        dimensions: the width of each vector (the encoder's `model_dim`).
        window: pairs up to this many positions apart count, each weighted 1 / distance.
        smoothing: the context distribution is raised to this power, which keeps rare contexts
            from getting huge PMI values.
        ignore_ids: ids that neither get nor give context (`[PAD]`, `[CLS]`, `[SEP]`, `[MASK]`...):
            their rows are zero.
        seed: the SVD's starting vector.
        chunk_rows: sequences counted at a time (bounds memory on large corpora).

    Returns:
        A `(vocabulary_size, dimensions)` float32 array; all-zero rows for ids that never
        co-occur with another counted id.
    """
    token_ids = np.asarray(token_ids)
    if token_ids.ndim != 2 or token_ids.shape[1] < 2:
        raise ValueError(f"token_ids has shape {token_ids.shape}: give a (sequences, length) array, length >= 2.")
    if not 0 < dimensions < vocabulary_size - 1:
        raise ValueError(f"dimensions = {dimensions}: give a width between 1 and vocabulary_size - 2 "
                         f"({vocabulary_size - 2}).")
    if token_ids.size and (token_ids.min() < 0 or token_ids.max() >= vocabulary_size):
        raise ValueError(f"token ids run from {token_ids.min()} to {token_ids.max()}, outside the vocabulary of "
                         f"{vocabulary_size}: count with the vocabulary the ids were made with.")
    counted = np.ones(vocabulary_size, bool)
    counted[list(ignore_ids)] = False
    counts = scipy.sparse.csr_matrix((vocabulary_size, vocabulary_size), dtype=np.float64)
    for start in range(0, len(token_ids), chunk_rows):
        chunk = token_ids[start:start + chunk_rows].astype(np.int64)
        lefts, rights, weights = [], [], []
        for distance in range(1, min(window, chunk.shape[1] - 1) + 1):
            left, right = chunk[:, :-distance].ravel(), chunk[:, distance:].ravel()
            keep = counted[left] & counted[right]
            lefts += [left[keep], right[keep]]  # both directions: the counts are symmetric
            rights += [right[keep], left[keep]]
            weights += [np.full(2 * keep.sum(), 1.0 / distance)]
        pairs = scipy.sparse.coo_matrix((np.concatenate(weights), (np.concatenate(lefts), np.concatenate(rights))),
                                        shape=(vocabulary_size, vocabulary_size))
        counts = counts + pairs.tocsr()  # duplicate pairs are summed
    total = counts.sum()
    if total == 0:
        raise ValueError("no two counted tokens occur near each other: the corpus is empty or holds only ignored ids.")
    word_counts = np.asarray(counts.sum(axis=1)).ravel()
    context_counts = word_counts ** smoothing
    counts = counts.tocoo()
    pmi = (np.log(counts.data) + np.log(context_counts.sum())
           - np.log(word_counts[counts.row]) - np.log(context_counts[counts.col]))
    positive = pmi > 0
    ppmi = scipy.sparse.csr_matrix((pmi[positive], (counts.row[positive], counts.col[positive])),
                                   shape=(vocabulary_size, vocabulary_size))
    start_vector = np.random.default_rng(seed).uniform(-1, 1, vocabulary_size)
    left_vectors, singular_values, _ = scipy.sparse.linalg.svds(ppmi, k=dimensions, v0=start_vector)
    order = np.argsort(-singular_values)
    vectors = (left_vectors[:, order] * np.sqrt(singular_values[order])).astype(np.float32)
    vectors[ppmi.getnnz(axis=1) == 0] = 0  # exactly: the SVD leaves round-off there
    return vectors


def start_token_embedding(encoder, vectors):
    """Copy `vectors` into `encoder`'s token embedding, scaled to the embedding's initial spread.

    Rows of `vectors` that are all zero (ids without a vector) keep their random start. The
    scale matters: the MLM head reads the same (tied) matrix, and the position embedding is
    added to it before the first LayerNorm.

    Args:
        encoder: a model from `nbhelpers.models.build_encoder`.
        vectors: a `(vocabulary_size, model_dim)` array, e.g. from `cooccurrence_vectors`.
    """
    table = encoder.get_layer(EMBEDDING_LAYER).token_embedding.embeddings
    current = keras.ops.convert_to_numpy(table)
    vectors = np.asarray(vectors, np.float32)
    if vectors.shape != current.shape:
        raise ValueError(f"vectors of shape {vectors.shape} do not fit the token embedding {current.shape}: "
                         "compute them with the encoder's vocabulary size and model_dim.")
    has_vector = np.any(vectors != 0, axis=1)
    if not has_vector.any():
        raise ValueError("every row of vectors is zero: there is nothing to start from.")
    scale = current.std() / vectors[has_vector].std()
    table.assign(np.where(has_vector[:, None], vectors * scale, current))


def nearest_words(vectors, vocabulary, word, count=5):
    """The `count` entries of `vocabulary` whose vectors are closest to `word`'s (cosine), nearest first.

    Args:
        vectors: one row per vocabulary entry, e.g. from `cooccurrence_vectors`.
        vocabulary: the entries, in id order (`tokenizer.get_vocabulary()`).
        word: an entry of `vocabulary` that has a vector.
        count: how many neighbours.
    """
    vocabulary = list(vocabulary)
    if word not in vocabulary:
        raise ValueError(f"{word!r} is not in the vocabulary: pick one of its entries.")
    vectors = np.asarray(vectors, np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    target = vocabulary.index(word)
    if norms[target] == 0:
        raise ValueError(f"{word!r} has no vector (it never occurs near a counted token).")
    similarity = vectors @ vectors[target] / np.where(norms == 0, np.inf, norms) / norms[target]
    similarity[target] = -np.inf
    return [vocabulary[i] for i in np.argsort(-similarity, kind="stable")[:count]]

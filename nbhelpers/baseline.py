"""The guide's bag-of-words baseline: multi-hot word vectors -> one sigmoid unit.

Usage (names as in the notebooks):

    vectorizer = make_multi_hot_vectorizer(train_sentences, max_tokens=4000, ngrams=1)
    train = multi_hot_dataset(vectorizer, train_sentences, train_labels, 32, shuffle_seed=0)
    model = build_baseline_model(vectorizer.vocabulary_size())
    text_model = build_text_baseline(vectorizer, model)  # after training: raw strings in
    text_model.save(staging / BAG_OF_WORDS_FILE)  # into notebook 01's artifact folder
    bag_of_words = load_bag_of_words("artifacts")  # later: notebook 05 and the bench read it back
"""

import keras
import numpy as np

from nbhelpers.artifacts import require_artifact

# Notebook 01's raw-text baseline, inside its artifact folder `01_baseline`.
BAG_OF_WORDS_FILE = "bag_of_words.keras"
# What the bag of words counts, by its `ngrams` (the model card says it in these words).
BAG_OF_WORDS_FEATURES = {1: "words", 2: "words and pairs of neighbouring words",
                         3: "words and runs of two or three neighbouring words"}

# TensorFlow is imported by the functions that use it: without it (notebook 04 on a JAX-only machine)
# the multi-hot vectors come from NumPy (`multi_hot_columns`, `multi_hot`), from words that notebook 02
# split with TensorFlow (`sentence_words`).


def make_multi_hot_vectorizer(train_sentences, max_tokens=4000, ngrams=1):
    """A `TextVectorization` layer adapted on the training sentences, giving multi-hot vectors.

    Args:
        train_sentences: the sentences whose most frequent words (and word pairs) it keeps.
        max_tokens: the vectors' length: the most frequent `max_tokens - 1` entries, and one
            column for every other.
        ngrams: 1 counts single words (the guide's baseline); 2 counts each pair of neighbouring
            words too ("not good"), as one more entry competing for `max_tokens`; 3 also each run
            of three ("not very good").

    Example:

    >>> vectorizer = make_multi_hot_vectorizer(["not good", "very good"], max_tokens=10, ngrams=2)
    >>> sorted(str(entry) for entry in vectorizer.get_vocabulary()[1:])
    ['good', 'not', 'not good', 'very', 'very good']
    """
    import tensorflow as tf

    if ngrams not in BAG_OF_WORDS_FEATURES:
        raise ValueError(f"ngrams = {ngrams!r}: count single words (1), or word pairs (2) or triples (3) too.")
    vectorizer = keras.layers.TextVectorization(max_tokens=max_tokens, ngrams=ngrams if ngrams > 1 else None,
                                                output_mode="multi_hot")
    vectorizer.adapt(tf.constant(list(train_sentences)))
    return vectorizer


def sentence_words(sentences):
    """Each sentence's words as `TextVectorization` sees them (lowercased, punctuation stripped, split on
    whitespace), as ids into one word list: what `multi_hot_columns` and `multi_hot` need, without TensorFlow.

    Args:
        sentences: a list of str (e.g. SST-2's training and dev sentences together).

    Returns:
        `(words, word_ids, counts)`: the word list (`numpy` str array), every sentence's word ids end
        to end (`int32`) and how many each sentence has (`int32`, one per sentence).

    Example:

    >>> words, ids, counts = sentence_words(["A film!", "the FILM"])
    >>> [" ".join(words[ids[sum(counts[:i]):sum(counts[:i + 1])]]) for i in range(2)]
    ['a film', 'the film']
    """
    import tensorflow as tf

    # TextVectorization's own standardization and split: the same words as the baseline's vectorizer.
    # Padded rather than ragged output: ragged works only on the TensorFlow backend, and no word is
    # padding (id 0) here, since the layer is adapted on these very sentences.
    splitter = keras.layers.TextVectorization(output_mode="int")
    splitter.adapt(tf.constant(list(sentences)))
    ids = np.asarray(keras.ops.convert_to_numpy(splitter(tf.constant(list(sentences)))))
    words = np.array(splitter.get_vocabulary()[2:])  # after "" (padding) and "[UNK]": every word is known here
    in_sentence = ids > 0
    return words, (ids[in_sentence] - 2).astype("int32"), in_sentence.sum(axis=1).astype("int32")


def split_rows(word_ids, counts):
    """`sentence_words`'s ids end to end -> one array of word ids per sentence."""
    return np.split(np.asarray(word_ids), np.cumsum(counts)[:-1]) if len(counts) else []


def multi_hot_columns(word_rows, words, max_tokens=4000):
    """Which multi-hot column each word gets, as `make_multi_hot_vectorizer` adapted on these sentences.

    `TextVectorization` keeps the `max_tokens - 1` most frequent words (ties broken by the word,
    the later in byte order first, as Keras's `IndexLookup` sorts), after column 0, which counts
    every other word (out of vocabulary).

    Args:
        word_rows: the training sentences, one array of word ids each (`split_rows`).
        words: the word list the ids index (`sentence_words`).
        max_tokens: the vectorizer's `max_tokens`.

    Returns:
        `(columns, size)`: each word id's column (0 for a word left out) and the vectors' length
        (the vectorizer's `vocabulary_size()`).

    Example:

    >>> columns, size = multi_hot_columns([np.array([0, 1, 1]), np.array([2])], ["a", "film", "the"], max_tokens=3)
    >>> columns.tolist(), size
    ([0, 1, 2], 3)
    """
    counts = np.bincount(np.concatenate([np.asarray(r, "int64") for r in word_rows] + [np.zeros(0, "int64")]),
                         minlength=len(words))
    present = np.flatnonzero(counts)
    encoded = np.array([str(words[i]).encode("utf-8") for i in present], dtype=object)
    # np.lexsort sorts by its last key first: by count, ties by the word (its UTF-8 bytes); reversed.
    kept = present[np.lexsort((encoded, counts[present]))[::-1]][: max_tokens - 1]
    columns = np.zeros(len(words), "int32")
    columns[kept] = np.arange(1, len(kept) + 1)
    return columns, len(kept) + 1


def multi_hot(word_rows, columns, size):
    """Multi-hot `float32` vectors `(len(word_rows), size)`: 1 in the column of every word a sentence holds."""
    vectors = np.zeros((len(word_rows), size), "float32")
    for row, ids in enumerate(word_rows):
        vectors[row, columns[np.asarray(ids, "int64")]] = 1.0
    return vectors


def build_baseline_model(vocabulary_size):
    """Logistic regression on the multi-hot vector: `(batch, vocabulary_size)` -> `(batch, 1)`.

    Args:
        vocabulary_size: the vectorizer's `vocabulary_size()` (at most its `max_tokens`).
    """
    inputs = keras.Input(shape=(vocabulary_size,), name="multi_hot")
    outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="sentiment")(inputs)
    return keras.Model(inputs, outputs, name="bag_of_words")


def build_text_baseline(vectorizer, baseline):
    """The trained baseline with its vectorizer inside: `(batch,)` strings -> `(batch, 1)` probability.

    Saved as a `.keras` file it carries its word list, so notebook 05 can score it on raw text
    beside the exported transformer (on TensorFlow, whose tensors hold strings).

    Args:
        vectorizer: the adapted multi-hot `TextVectorization` layer.
        baseline: the trained model from `build_baseline_model`.
    """
    text = keras.Input(shape=(), dtype="string", name="text")
    return keras.Model(text, baseline(vectorizer(text)), name="bag_of_words_from_text")


def load_bag_of_words(artifacts_dir):
    """Notebook 01's trained bag of words, raw strings in: `(batch,)` strings -> `(batch, 1)` probability.

    Args:
        artifacts_dir: the artifacts folder where notebook 01 ran.

    Raises:
        ArtifactError: notebook 01's artifact is missing, incomplete or changed since it was written
            (the message names the notebook to run).

    Example:

    >>> import tensorflow as tf
    >>> from nbhelpers.artifacts import publish_artifact, stage_artifact, write_json
    >>> vectorizer = make_multi_hot_vectorizer(["a good film", "a dull film"], max_tokens=10)
    >>> staging = stage_artifact("artifacts", "01_baseline")
    >>> build_text_baseline(vectorizer, build_baseline_model(vectorizer.vocabulary_size())).save(staging / BAG_OF_WORDS_FILE)
    >>> write_json(staging / "config.json", {})
    >>> _ = publish_artifact(staging)
    >>> tuple(load_bag_of_words("artifacts")(tf.constant(["a good film"])).shape)
    (1, 1)
    """
    folder = require_artifact(artifacts_dir, "01_baseline", files=(BAG_OF_WORDS_FILE,))
    return keras.models.load_model(folder / BAG_OF_WORDS_FILE)

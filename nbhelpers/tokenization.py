"""WordPiece tokenization: the tokenizer and tokenizing text once into arrays.

The BERT uncased vocabulary holds lowercase, accent-free tokens only, so the tokenizer must
lowercase and strip accents; the 2022 guide did neither and mapped every capitalised word to
`[UNK]`.

Example:

>>> tokenizer = make_tokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "film"], 4)
>>> tokenize_texts(tokenizer, ["The FILM"]).tolist()
[[5, 6, 0, 0]]
"""

import numpy as np
import tensorflow as tf
import keras_hub

# Tokenizing in batches of this many texts keeps memory flat on large corpora.
TOKENIZE_BATCH = 2048


def make_tokenizer(vocabulary, sequence_length):
    """Build the series' WordPiece tokenizer.

    Args:
        vocabulary: a vocabulary file path, or a list of tokens.
        sequence_length: every output is padded with `[PAD]` (id 0) or truncated to this length.

    Returns:
        A `keras_hub.tokenizers.WordPieceTokenizer` that lowercases and strips accents.
    """
    return keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary=str(vocabulary) if not isinstance(vocabulary, list) else vocabulary,
        sequence_length=sequence_length,
        lowercase=True,
        strip_accents=True,
    )


def tokenize_texts(tokenizer, texts):
    """Tokenize a list of strings into an `int32` array of shape `(len(texts), sequence_length)`."""
    dataset = tf.data.Dataset.from_tensor_slices(list(texts)).batch(TOKENIZE_BATCH)
    dataset = dataset.map(tokenizer, num_parallel_calls=tf.data.AUTOTUNE)
    arrays = [batch.numpy() for batch in dataset]
    length = tokenizer.sequence_length
    return np.concatenate(arrays).astype("int32") if arrays else np.zeros((0, length), "int32")


def unknown_token_rate(tokenizer, token_ids):
    """The fraction of non-padding tokens that are `[UNK]` (a check that the vocabulary fits)."""
    real = token_ids != tokenizer.token_to_id("[PAD]")
    unknown = token_ids == tokenizer.token_to_id("[UNK]")
    return float(unknown.sum() / max(real.sum(), 1))


def classification_dataset(token_ids, labels, batch_size, shuffle_seed=None):
    """A `tf.data` pipeline of `(token_ids, label)` batches for fine-tuning or evaluation.

    Args:
        token_ids: an `(n, sequence_length)` int array, e.g. from `tokenize_texts`.
        labels: `n` labels, 0 or 1.
        batch_size: examples per batch.
        shuffle_seed: shuffle each epoch with this seed; `None` keeps the order (evaluation).
    """
    dataset = tf.data.Dataset.from_tensor_slices((token_ids, np.asarray(labels, "float32")))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(token_ids), seed=shuffle_seed)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)

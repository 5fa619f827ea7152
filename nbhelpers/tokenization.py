"""WordPiece tokenization: the tokenizer and tokenizing text once into arrays.

The BERT uncased vocabulary holds lowercase, accent-free tokens only, so the tokenizer must
lowercase and strip accents; the 2022 guide did neither and mapped every capitalised word to
`[UNK]`.

Example:

>>> tokenizer = make_tokenizer(SPECIAL_TOKENS + ["the", "film"], 4)
>>> tokenize_texts(tokenizer, ["The FILM"]).tolist()
[[5, 6, 0, 0]]
"""

import numpy as np

# keras-hub and TensorFlow (tf.data, tensorflow-text) are imported by the functions that use them:
# the special tokens below then cost nothing to import (the data loaders check vocabularies with
# them), and `make_tokenizer` also works without TensorFlow (keras-hub's Python WordPiece), as
# notebooks 03 and 04 do on a JAX-only machine.

# The special tokens, first in every vocabulary of the series, so their ids are fixed.
PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = [PAD, UNK, CLS, SEP, MASK]
PAD_ID = SPECIAL_TOKENS.index(PAD)
# Masking never chooses these: they carry no word to predict.
NEVER_MASKED = (PAD, CLS, SEP)

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
    import keras_hub

    return keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary=str(vocabulary) if not isinstance(vocabulary, list) else vocabulary,
        sequence_length=sequence_length,
        lowercase=True,
        strip_accents=True,
    )


def compute_vocabulary(texts, vocabulary_size):
    """Compute a WordPiece vocabulary from text (keras-hub's `compute_word_piece_vocabulary`).

    Lowercased and accent-stripped like `make_tokenizer`, with the special tokens first
    (`[PAD]` is id 0). A vocabulary fitted to the pretraining corpus needs no download, has far
    fewer `[UNK]` than a general one of the same size, and a smaller output layer.

    Args:
        texts: a list of str.
        vocabulary_size: the most entries the vocabulary may have.

    Returns:
        A list of tokens (a token's id is its index).
    """
    import keras_hub
    import tensorflow as tf

    # A list of str would be read as file names: pass a dataset.
    return keras_hub.tokenizers.compute_word_piece_vocabulary(
        tf.data.Dataset.from_tensor_slices(list(texts)).batch(1000),
        vocabulary_size,
        lowercase=True,
        strip_accents=True,
        reserved_tokens=SPECIAL_TOKENS,
    )


def tokenize_texts(tokenizer, texts):
    """Tokenize a list of strings into an `int32` array of shape `(len(texts), sequence_length)`."""
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(list(texts)).batch(TOKENIZE_BATCH)
    dataset = dataset.map(tokenizer, num_parallel_calls=tf.data.AUTOTUNE)
    arrays = [batch.numpy() for batch in dataset]
    length = tokenizer.sequence_length
    return np.concatenate(arrays).astype("int32") if arrays else np.zeros((0, length), "int32")


def pack_texts(tokenizer, texts):
    """Tokenize texts and pack them end to end into full sequences, `[SEP]` between texts.

    Truncating each text to the sequence length throws away the rest of a long text, and padding
    a short one spends compute on `[PAD]`; packing uses every token (only the last sequence is
    padded). Masking and attention treat the packed sequence as one text.

    Args:
        tokenizer: from `make_tokenizer`; its `sequence_length` is the packed length.
        texts: a list of str.

    Returns:
        An `int32` array of shape `(n, sequence_length)`.
    """
    import tensorflow as tf

    length = tokenizer.sequence_length
    unpadded = make_tokenizer(tokenizer.get_vocabulary(), sequence_length=None)
    separator = np.array([tokenizer.token_to_id(SEP)], "int32")
    dataset = tf.data.Dataset.from_tensor_slices(list(texts)).batch(TOKENIZE_BATCH).map(unpadded)
    pieces = []
    for batch in dataset:
        for row in batch.numpy():
            pieces += [np.asarray(row, "int32"), separator]
    stream = np.concatenate(pieces) if pieces else np.zeros(0, "int32")
    padded = np.full(-(-len(stream) // length) * length, PAD_ID, "int32")
    padded[: len(stream)] = stream
    return padded.reshape(-1, length)


def unknown_token_rate(tokenizer, token_ids):
    """The fraction of non-padding tokens that are `[UNK]` (a check that the vocabulary fits)."""
    real = token_ids != tokenizer.token_to_id(PAD)
    unknown = token_ids == tokenizer.token_to_id(UNK)
    return float(unknown.sum() / max(real.sum(), 1))


def bucket_lengths(sequence_length, shortest=8):
    """Padded lengths for length bucketing: powers of two from `shortest` and the lengths halfway
    between them, then `sequence_length`.

    Half steps pad a sentence longer than `shortest` by less than a third of its bucket: SST-2's
    training phrases (a quarter of them 4 tokens or fewer) then average 14.8 tokens a row,
    against 21.2 with powers of two from 16, for a few more compiled shapes.

    >>> bucket_lengths(128)
    [8, 12, 16, 24, 32, 48, 64, 96, 128]
    """
    doublings = (shortest * 2**n for n in range(16))
    lengths = sorted({length for n in doublings for length in (n, n * 3 // 2) if length < sequence_length})
    return lengths + [sequence_length]

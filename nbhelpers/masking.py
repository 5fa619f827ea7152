"""Masked-language-model inputs: keras-hub's mask generator over token ids, in `tf.data`.

The pipeline masks after batching inside `Dataset.map`, so every epoch draws new masks
("dynamic masking") while the tokenization is done once.

Example:

>>> masker = make_mask_generator(tokenizer, mask_rate=0.2, predictions_per_sequence=25)
>>> dataset = mlm_dataset(token_ids, masker, batch_size=64, shuffle_seed=0)
>>> features, labels, sample_weight = next(iter(dataset))
>>> sorted(features)
['mask_positions', 'token_ids']
"""

import numpy as np
import tensorflow as tf
import keras_hub


def make_mask_generator(
    tokenizer,
    mask_rate,
    predictions_per_sequence,
    mask_token_rate=0.8,
    random_token_rate=0.1,
):
    """Build keras-hub's `MaskedLMMaskGenerator` for a tokenizer's vocabulary.

    Args:
        tokenizer: the WordPiece tokenizer (gives vocabulary size and special token ids).
        mask_rate: the probability that a token is selected for prediction.
        predictions_per_sequence: at most this many selected tokens per sequence.
        mask_token_rate: of the selected tokens, the share replaced by `[MASK]`.
        random_token_rate: the share replaced by a random token (the rest are kept).
    """
    return keras_hub.layers.MaskedLMMaskGenerator(
        vocabulary_size=tokenizer.vocabulary_size(),
        mask_selection_rate=mask_rate,
        mask_token_id=tokenizer.token_to_id("[MASK]"),
        mask_selection_length=predictions_per_sequence,
        unselectable_token_ids=[
            tokenizer.token_to_id(token) for token in ("[PAD]", "[CLS]", "[SEP]")
        ],
        mask_token_rate=mask_token_rate,
        random_token_rate=random_token_rate,
    )


def mask_batch(mask_generator, token_ids):
    """Mask a batch of token ids into the `(features, labels, sample_weight)` Keras expects."""
    masked = mask_generator(token_ids)
    features = {"token_ids": masked["token_ids"], "mask_positions": masked["mask_positions"]}
    return features, masked["mask_ids"], masked["mask_weights"]


def mlm_dataset(token_ids, mask_generator, batch_size, shuffle_seed=None):
    """A `tf.data` pipeline of masked batches, with fresh masks every epoch.

    Args:
        token_ids: an `(n, sequence_length)` int array of tokenized text.
        mask_generator: from `make_mask_generator`.
        batch_size: sequences per batch (the last, smaller batch is dropped so shapes stay static).
        shuffle_seed: shuffle each epoch with this seed; `None` keeps the order.
    """
    dataset = tf.data.Dataset.from_tensor_slices(np.asarray(token_ids, "int32"))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(token_ids), seed=shuffle_seed)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    dataset = dataset.map(
        lambda ids: mask_batch(mask_generator, ids), num_parallel_calls=tf.data.AUTOTUNE
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def describe_masking(tokenizer, features, labels, sample_weight, limit=3):
    """Decode a few masked sequences for reading: the input as the model sees it, and the answers.

    Returns:
        A list of `(masked_text, answers)`, where `answers` lists `position: original token`.
    """
    pad_id = tokenizer.token_to_id("[PAD]")
    described = []
    for ids, positions, targets, weights in zip(
        np.asarray(features["token_ids"])[:limit],
        np.asarray(features["mask_positions"])[:limit],
        np.asarray(labels)[:limit],
        np.asarray(sample_weight)[:limit],
    ):
        tokens = [tokenizer.id_to_token(int(i)) for i in ids if i != pad_id]
        answers = [
            f"{int(p)}: {tokens[int(p)]} <- {tokenizer.id_to_token(int(t))}"
            for p, t, w in zip(positions, targets, weights)
            if w > 0
        ]
        described.append((" ".join(tokens), answers))
    return described

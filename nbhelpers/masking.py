"""Masked-language-model inputs: dynamic masking of token ids, seeded, inside `tf.data`.

The pipeline masks after batching inside `Dataset.map`, so every epoch draws new masks
("dynamic masking") while the tokenization is done once.

The masking follows keras-hub's `MaskedLMMaskGenerator` (and the tf-text ops under it): of the
tokens that are not `[PAD]`/`[CLS]`/`[SEP]`, `ceil(mask_rate * count)` are chosen at random,
at most `predictions_per_sequence`; of those, 80 % become `[MASK]`, 10 % a random token and
10 % stay. We draw the random numbers with stateless ops from an explicit seed per batch because
keras-hub's generator cannot be seeded inside `tf.data` (its per-row shuffles run in parallel),
so a run would not repeat. `tests/test_masking.py` checks the two agree statistically.

Example:

>>> masker = make_mask_generator(tokenizer, mask_rate=0.2, predictions_per_sequence=25)
>>> dataset = mlm_dataset(token_ids, masker, batch_size=64, shuffle_seed=0)
>>> features, labels, sample_weight = next(iter(dataset))
>>> sorted(features)
['mask_positions', 'token_ids']
"""

import dataclasses

import numpy as np
import tensorflow as tf

SPECIAL_TOKENS_NEVER_MASKED = ("[PAD]", "[CLS]", "[SEP]")


@dataclasses.dataclass(frozen=True)
class MaskGenerator:
    """Chooses and replaces tokens for masked-language-model training, from an explicit seed.

    Args:
        vocabulary_size: random replacement tokens are drawn from `[0, vocabulary_size)`.
        mask_token_id: the id of `[MASK]`.
        unselectable_ids: ids that are never chosen (padding and separators).
        mask_rate: the share of selectable tokens chosen for prediction (rounded up).
        predictions_per_sequence: at most this many chosen tokens per sequence.
        mask_token_rate: of the chosen tokens, the share replaced by `[MASK]`.
        random_token_rate: the share replaced by a random token (the rest are kept).

    Example:

    >>> masker = MaskGenerator(1000, 4, (0, 2, 3), mask_rate=0.2, predictions_per_sequence=25)
    >>> out = masker(tf.constant([[2, 17, 18, 3, 0]]), seed=tf.constant([1, 2]))
    >>> sorted(out)
    ['mask_ids', 'mask_positions', 'mask_weights', 'token_ids']
    """

    vocabulary_size: int
    mask_token_id: int
    unselectable_ids: tuple
    mask_rate: float
    predictions_per_sequence: int
    mask_token_rate: float = 0.8
    random_token_rate: float = 0.1

    def __call__(self, token_ids, seed):
        """Mask a `(batch, length)` int tensor; `seed` is a shape-`(2,)` int tensor."""
        token_ids = tf.convert_to_tensor(token_ids, tf.int32)
        batch, length = tf.shape(token_ids)[0], tf.shape(token_ids)[1]
        count = self.predictions_per_sequence
        select_seed, value_seed, token_seed = tf.unstack(
            tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
        )
        selectable = tf.reduce_all(
            token_ids[:, :, None] != tf.constant(self.unselectable_ids, tf.int32), axis=-1
        )
        to_choose = tf.math.ceil(tf.reduce_sum(tf.cast(selectable, tf.float32), 1) * self.mask_rate)
        to_choose = tf.minimum(tf.cast(to_choose, tf.int32), count)
        # A random priority per selectable token; the `to_choose` highest are a uniform sample.
        priority = tf.where(selectable, tf.random.stateless_uniform(tf.shape(token_ids), select_seed), -1.0)
        _, chosen = tf.math.top_k(priority, k=tf.minimum(count, length))
        chosen = tf.pad(chosen, [[0, 0], [0, count - tf.shape(chosen)[1]]])
        keep = tf.range(count)[None, :] < to_choose[:, None]
        # Sorted positions, the chosen first; unused slots point at position 0 with weight 0.
        positions = tf.sort(tf.where(keep, chosen, length), axis=-1)
        keep = positions < length
        positions = tf.where(keep, positions, 0)
        originals = tf.gather(token_ids, positions, batch_dims=1)

        draw = tf.random.stateless_uniform([batch, count], value_seed)
        random_tokens = tf.random.stateless_uniform(
            [batch, count], token_seed, minval=0, maxval=self.vocabulary_size, dtype=tf.int32
        )
        replacements = tf.where(
            draw < self.mask_token_rate,
            self.mask_token_id,
            tf.where(draw < self.mask_token_rate + self.random_token_rate, random_tokens, originals),
        )
        hits = tf.one_hot(positions, length, dtype=tf.int32) * tf.cast(keep, tf.int32)[:, :, None]
        is_chosen = tf.reduce_max(hits, axis=1) > 0
        masked = tf.where(is_chosen, tf.reduce_sum(hits * replacements[:, :, None], axis=1), token_ids)
        return {
            "token_ids": masked,
            "mask_positions": positions,
            "mask_ids": tf.where(keep, originals, 0),
            "mask_weights": tf.cast(keep, tf.float32),
        }


def make_mask_generator(
    tokenizer,
    mask_rate,
    predictions_per_sequence,
    mask_token_rate=0.8,
    random_token_rate=0.1,
):
    """Build a `MaskGenerator` for a tokenizer's vocabulary.

    Args:
        tokenizer: the WordPiece tokenizer (gives vocabulary size and special token ids).
        mask_rate: the share of tokens selected for prediction.
        predictions_per_sequence: at most this many selected tokens per sequence.
        mask_token_rate: of the selected tokens, the share replaced by `[MASK]`.
        random_token_rate: the share replaced by a random token (the rest are kept).
    """
    return MaskGenerator(
        vocabulary_size=tokenizer.vocabulary_size(),
        mask_token_id=tokenizer.token_to_id("[MASK]"),
        unselectable_ids=tuple(tokenizer.token_to_id(t) for t in SPECIAL_TOKENS_NEVER_MASKED),
        mask_rate=mask_rate,
        predictions_per_sequence=predictions_per_sequence,
        mask_token_rate=mask_token_rate,
        random_token_rate=random_token_rate,
    )


def mask_batch(mask_generator, token_ids, seed=(0, 0)):
    """Mask a batch of token ids into the `(features, labels, sample_weight)` Keras expects."""
    masked = mask_generator(token_ids, tf.convert_to_tensor(seed, tf.int64))
    features = {"token_ids": masked["token_ids"], "mask_positions": masked["mask_positions"]}
    return features, masked["mask_ids"], masked["mask_weights"]


def mlm_dataset(token_ids, mask_generator, batch_size, shuffle_seed=None, mask_seed=0):
    """A `tf.data` pipeline of masked batches, with fresh masks every epoch.

    Args:
        token_ids: an `(n, sequence_length)` int array of tokenized text.
        mask_generator: from `make_mask_generator`.
        batch_size: sequences per batch (the last, smaller batch is dropped so shapes stay static).
        shuffle_seed: shuffle each epoch with this seed; `None` keeps the order.
        mask_seed: the masks' seed; each pass over the dataset draws new masks from it.
    """
    dataset = tf.data.Dataset.from_tensor_slices(np.asarray(token_ids, "int32"))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(token_ids), seed=shuffle_seed)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    # One seed pair per batch, new on every pass (epoch), the same in every run.
    seeds = tf.data.Dataset.random(seed=mask_seed, rerandomize_each_iteration=True).batch(2)
    dataset = tf.data.Dataset.zip(dataset, seeds).map(
        lambda ids, seed: mask_batch(mask_generator, ids, seed), num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
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

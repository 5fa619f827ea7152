"""The three tasks' datasets: the bag of words', the MLM's and the classifier's; `tf.data`, or NumPy without TensorFlow.

The `tf.data` pipelines: `multi_hot_dataset` (notebook 01's baseline), `mlm_dataset` (notebook
02 and 03's masked batches) and `classification_dataset` (fine-tuning, length-bucketed).

Notebooks 03 and 04 read token arrays that notebook 02 wrote (where TensorFlow is). Where
TensorFlow imports (`nbhelpers.tensorflow_available`), they keep their `tf.data` pipelines: the
masks drawn in `tf.data` (`nbhelpers.masking`) and the length buckets of
`tf.data.Dataset.bucket_by_sequence_length`. Where it does not (a JAX-only TPU VM or GPU image,
`KERAS_BACKEND=jax`), the same batches come from NumPy (`NumpyBatches`): the masks are drawn inside
the compiled step (`nbhelpers.masking.SelfMaskingMLM`, equal to the
`tf.data` masks) and the fine-tuning batches are bucketed by length as `tf.data` buckets them,
in a seeded NumPy order. The choice depends only on whether TensorFlow imports, not on the backend.

Usage (names as in the notebooks):

    train, valid = mlm_batches(tokenizer, train_tokens, valid_tokens, 32, 0.2, 16, seed=42)
    trainer = masked_lm_trainer(pretrainer, train)  # the pretrainer, or it masking its own batches
    train_ds = classification_batches(token_ids, labels, 32, shuffle_seed=42, bucketed=True)
"""

import dataclasses
import functools

import keras
import numpy as np

from nbhelpers import tensorflow_available
from nbhelpers.artifacts import require_artifact
from nbhelpers.baseline import sentence_words, split_rows
from nbhelpers.data import load_sst2, sample_labelled
from nbhelpers.distribution import multi_worker_job
from nbhelpers.masking import SelfMaskingMLM, make_mask_generator, mask_batch
from nbhelpers.tokenization import MASK, NEVER_MASKED, PAD_ID, bucket_lengths, tokenize_texts

# Notebook 02 writes SST-2, tokenized, into its artifact for notebook 04 (`labelled_sst2`).
SST2_ARRAYS = "sst2.npz"


class NumpyBatches(keras.utils.PyDataset):
    """Batches of in-memory arrays, planned pass by pass: the `tf.data` pipelines' counterpart in NumPy.

    A Keras `PyDataset` (validation data for `fit`, any backend), iterable for one pass (as a
    `tf.data.Dataset` is), and `repeat()` gives endless passes (for `fit` with `steps_per_epoch`),
    each pass in a new seeded order when `shuffle_seed` is given.

    Args:
        arrays: a tuple of arrays with the same first dimension; a batch holds their rows, the
            first array (token ids) cut to the batch's padded length.
        plan: `plan(order)` -> a list of `(row indices, padded length)`, one per batch, for the
            rows in `order`.
        shuffle_seed: a seed for the passes' orders; `None` keeps the rows' order.
        masking: for `masked_lm_trainer`, the keyword arguments of `SelfMaskingMLM` (MLM batches only).
    """

    def __init__(self, arrays, plan, shuffle_seed=None, masking=None):
        super().__init__()
        self.arrays, self.plan, self.masking = tuple(arrays), plan, masking
        self.rng = None if shuffle_seed is None else np.random.default_rng(shuffle_seed)
        self.batches = self._next_pass()

    def _next_pass(self):
        rows = len(self.arrays[0])
        return self.plan(np.arange(rows) if self.rng is None else self.rng.permutation(rows))

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        rows, length = self.batches[index]
        return (self.arrays[0][rows, :length], *(array[rows] for array in self.arrays[1:]))

    def on_epoch_end(self):
        if self.rng is not None:
            self.batches = self._next_pass()

    def __iter__(self):
        return (self[index] for index in range(len(self)))

    def repeat(self):
        """Endless passes, each in a new order (as `tf.data`'s `shuffle(...).repeat()`)."""
        while True:
            yield from self
            self.on_epoch_end()


def in_order(batch_size, drop_remainder, length, order):
    """A `NumpyBatches` plan as tf.data's `batch`: consecutive rows of `order`, padded to `length`, the
    last, smaller batch kept unless `drop_remainder`."""
    stop = len(order) - len(order) % batch_size if drop_remainder else len(order)
    return [(order[start : start + batch_size], length) for start in range(0, stop, batch_size)]


def _by_length(buckets, bucket_of, batch_size, drop_remainder, order):
    # tf.data's `bucket_by_sequence_length`: rows go in `order` to their bucket; a bucket that
    # fills is a batch at once; at the end, the buckets still holding rows are flushed in the
    # order of the buckets (or dropped with `drop_remainder`).
    batches, waiting = [], {}
    for row in order:
        bucket = bucket_of[row]
        waiting.setdefault(bucket, []).append(row)
        if len(waiting[bucket]) == batch_size:
            batches.append((np.array(waiting.pop(bucket)), buckets[bucket]))
    if not drop_remainder:
        batches += [(np.array(waiting[bucket]), buckets[bucket]) for bucket in sorted(waiting)]
    return batches


def bucketed_batches(token_ids, labels, batch_size, shuffle_seed=None, drop_remainder=False):
    """Fine-tuning batches bucketed by length in NumPy, as `classification_dataset(..., bucketed=True)`.

    Each row's real length runs to its last non-`[PAD]` token; a row goes to the shortest of
    `bucket_lengths(sequence_length)` that holds it, and each batch is padded to its bucket's length.
    With the same order of rows, the batches equal `tf.data`'s (a test checks); the orders of
    the passes come from NumPy's generator seeded with `shuffle_seed`, not from `tf.data`'s.

    Args:
        token_ids: an `(n, sequence_length)` int array, right-padded with 0.
        labels: `n` labels, 0 or 1.
        batch_size: rows per batch.
        shuffle_seed: a new order each pass from this seed; `None` keeps the rows' order (evaluation).
        drop_remainder: only whole batches in every bucket (batches split over several devices).

    Returns:
        A `NumpyBatches` of `(token_ids int32 (batch, bucket length), labels float32 (batch,))`.

    Example:

    >>> ids = np.array([[5, 6, 0, 0] + [0] * 60, [5] * 20 + [0] * 44])
    >>> [tuple(x.shape) for x, y in bucketed_batches(ids, [1, 0], batch_size=8)]
    [(1, 8), (1, 24)]
    """
    token_ids = np.asarray(token_ids, "int32")
    buckets = bucket_lengths(token_ids.shape[1])
    real_lengths = np.max(np.where(token_ids != PAD_ID, np.arange(1, token_ids.shape[1] + 1), 0), axis=1)
    plan = functools.partial(_by_length, buckets, np.searchsorted(buckets, real_lengths), batch_size, drop_remainder)
    return NumpyBatches((token_ids, np.asarray(labels, "float32")), plan, shuffle_seed)


def classification_batches(token_ids, labels, batch_size, shuffle_seed=None, bucketed=False, drop_remainder=False):
    """`(token_ids, label)` batches for fine-tuning or evaluation, with or without TensorFlow.

    Where TensorFlow is installed: `classification_dataset` (`tf.data`).
    Where it is not: the same batches from NumPy (`bucketed_batches`, or in order when not
    bucketed), their passes shuffled by NumPy's generator from `shuffle_seed`. Arguments as
    `classification_dataset`'s.

    Usage (names as in the notebooks):

        train = classification_batches(token_ids, labels, 32, shuffle_seed=42, bucketed=True)
        repeated, steps_per_epoch = repeated_epochs(train)  # nbhelpers.training
    """
    if _tf_data():
        return classification_dataset(token_ids, labels, batch_size, shuffle_seed=shuffle_seed, bucketed=bucketed,
                                      drop_remainder=drop_remainder)
    if bucketed:
        return bucketed_batches(token_ids, labels, batch_size, shuffle_seed, drop_remainder)
    token_ids = np.asarray(token_ids, "int32")
    plan = functools.partial(in_order, batch_size, drop_remainder, token_ids.shape[1])
    return NumpyBatches((token_ids, np.asarray(labels, "float32")), plan, shuffle_seed)


def mlm_batches(tokenizer, train_tokens, valid_tokens, batch_size, mask_rate, predictions_per_sequence, seed):
    """Notebook 03's training and validation batches, `(train, valid)`, with or without TensorFlow.

    Where TensorFlow is installed: `mlm_dataset` pipelines that mask every batch
    in `tf.data` (training shuffled and masked from `seed`, validation masked from `seed + 1`).
    Where it is not: `NumpyBatches` of raw token ids (whole batches only, training reshuffled every
    pass from `seed`), to be masked inside the step by the model `masked_lm_trainer` returns.

    Args:
        tokenizer: the WordPiece tokenizer (its vocabulary gives the special tokens' ids).
        train_tokens, valid_tokens: `(n, sequence_length)` int arrays from notebook 02.
        batch_size: sequences per batch (the global batch).
        mask_rate: the share of tokens chosen for prediction.
        predictions_per_sequence: at most this many chosen tokens per sequence (the tf.data path;
            in the step, the pretraining model's input says it).
        seed: the seed of the order and of the masks.
    """
    if _tf_data():
        masker = make_mask_generator(tokenizer, mask_rate, predictions_per_sequence)
        return (mlm_dataset(train_tokens, masker, batch_size, shuffle_seed=seed, mask_seed=seed),
                mlm_dataset(valid_tokens, masker, batch_size, mask_seed=seed + 1))
    masking = {"mask_token_id": tokenizer.token_to_id(MASK), "mask_rate": mask_rate, "seed": seed,
               "unselectable_ids": [tokenizer.token_to_id(token) for token in NEVER_MASKED]}

    def batches(tokens, shuffle_seed):
        tokens = np.asarray(tokens, "int32")
        plan = functools.partial(in_order, batch_size, True, tokens.shape[1])
        return NumpyBatches((tokens,), plan, shuffle_seed, masking=masking)

    return batches(train_tokens, seed), batches(valid_tokens, None)


def multi_hot_dataset(vectorizer, sentences, labels, batch_size, shuffle_seed=None):
    """A `tf.data` pipeline of `(multi_hot, label)` batches; shuffled each epoch if a seed is given."""
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((list(sentences), np.asarray(labels, "float32")))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(sentences), seed=shuffle_seed)
    dataset = dataset.batch(batch_size).map(lambda text, label: (vectorizer(text), label))
    return dataset.prefetch(tf.data.AUTOTUNE)


def mlm_dataset(token_ids, mask_generator, batch_size, shuffle_seed=None, mask_seed=0):
    """A `tf.data` pipeline of masked batches, with fresh masks every epoch.

    Args:
        token_ids: an `(n, sequence_length)` int array of tokenized text.
        mask_generator: from `nbhelpers.masking.make_mask_generator`.
        batch_size: sequences per batch (the last, smaller batch is dropped so shapes stay static).
        shuffle_seed: shuffle each epoch with this seed; `None` keeps the order.
        mask_seed: the masks' seed; each pass over the dataset draws new masks from it.
    """
    import tensorflow as tf

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


def classification_dataset(token_ids, labels, batch_size, shuffle_seed=None, bucketed=False, drop_remainder=False):
    """A `tf.data` pipeline of `(token_ids, label)` batches for fine-tuning or evaluation.

    Args:
        token_ids: an `(n, sequence_length)` int array, e.g. from `tokenize_texts`.
        labels: `n` labels, 0 or 1.
        batch_size: examples per batch.
        shuffle_seed: shuffle each epoch with this seed; `None` keeps the order (evaluation).
        bucketed: group sentences of similar length and pad each batch only to its bucket's
            length (`bucket_lengths`) instead of `sequence_length`. SST-2's training phrases
            average 11 tokens: padded to 64 or 128, most of the compute would go to `[PAD]`.
            A few fixed lengths keep the number of compiled shapes small.
        drop_remainder: only whole batches (per bucket, when bucketed): a batch split over several
            devices must divide by them (`nbhelpers.distribution`; JAX refuses one that does
            not). With `shuffle_seed`, each pass leaves out other examples.
    """
    import tensorflow as tf

    token_ids = np.asarray(token_ids, "int32")
    labels = np.asarray(labels, "float32")
    if not bucketed:
        dataset = tf.data.Dataset.from_tensor_slices((token_ids, labels))
        if shuffle_seed is not None:
            dataset = dataset.shuffle(len(token_ids), seed=shuffle_seed)
        return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
    buckets = bucket_lengths(token_ids.shape[1])
    # Right-padded ids: the real length runs to the last non-[PAD] token.
    real_lengths = np.max(np.where(token_ids != PAD_ID, np.arange(1, token_ids.shape[1] + 1), 0), axis=1)
    dataset = tf.data.Dataset.from_tensor_slices((token_ids, real_lengths.astype("int32"), labels))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(token_ids), seed=shuffle_seed)
    dataset = dataset.map(lambda ids, length, label: (ids[:length], label))
    # Each batch is padded to its bucket's fixed length (boundary - 1), not to its longest item.
    dataset = dataset.bucket_by_sequence_length(
        lambda ids, label: tf.shape(ids)[0],
        bucket_boundaries=[n + 1 for n in buckets],
        bucket_batch_sizes=[batch_size] * (len(buckets) + 1),
        pad_to_bucket_boundary=True,
        drop_remainder=drop_remainder,
    )
    # Tell Keras how many batches an epoch has (bucketing hides it), so it does not warn.
    per_bucket = np.bincount(np.searchsorted(buckets, real_lengths), minlength=len(buckets))
    batches = int(np.sum(per_bucket // batch_size if drop_remainder else -(-per_bucket // batch_size)))
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
    return dataset.prefetch(tf.data.AUTOTUNE)


def _tf_data():
    # tf.data where TensorFlow imports, except in a JAX multi-worker job: there NumPy batches, which
    # every worker cuts the same way (`nbhelpers.distribution.feed_workers`), train as one process would.
    if not tensorflow_available():
        return False
    return keras.backend.backend() != "jax" or multi_worker_job()[0] < 2


def masked_lm_trainer(pretrainer, train_batches):
    """The model that notebook 03 compiles and fits on `train_batches` (from `mlm_batches`).

    For `tf.data` batches, masked already: the pretrainer itself. For NumPy batches of raw token
    ids: the pretrainer inside a `SelfMaskingMLM`, which masks each batch in its compiled step;
    compile it as the pretrainer (`loss="sparse_categorical_crossentropy"`, `weighted_metrics`
    over the chosen tokens) and save the pretrainer and its encoder, not it.
    """
    masking = getattr(train_batches, "masking", None)
    if masking is None:
        return pretrainer
    return SelfMaskingMLM(pretrainer, **masking)


@dataclasses.dataclass
class LabelledSST2:
    """SST-2 for notebook 04: token ids and labels, and the sentences (or their words) for the bag of words.

    Attributes:
        train_tokens, train_labels: the `LABEL_BUDGET` sample of the training rows (all of them at 0).
        dev_tokens, dev_labels: the dev set.
        pool_tokens, pool_labels: every training row (the label-budget curve samples from them).
        pool_sentences, dev_sentences: the texts (with TensorFlow) or each one's word ids, for the
            bag of words (without: `nbhelpers.baseline.multi_hot_columns`).
        words: the word list those ids index, or `None` where the texts are given.
    """

    train_tokens: np.ndarray
    train_labels: list
    dev_tokens: np.ndarray
    dev_labels: list
    pool_labels: list
    pool_sentences: list
    dev_sentences: list
    words: object
    _pool_tokens: object

    @property
    def pool_tokens(self):
        """Token ids of every training row (tokenized when first asked for, with TensorFlow)."""
        if callable(self._pool_tokens):
            self._pool_tokens = self._pool_tokens()
        return self._pool_tokens


def labelled_sst2(artifacts_dir, data_dir, tokenizer, label_budget, seed):
    """SST-2, tokenized, for notebook 04: from the tokenizer where TensorFlow is, from 02's arrays where not.

    With TensorFlow, the sentences are read from `data_dir` and tokenized here (as before). Without
    it, notebook 02's artifact holds them tokenized (`sst2.npz`: token ids, labels and the
    bag of words' word ids), so notebook 04 needs no tokenizer pass over them.

    Args:
        artifacts_dir: the artifacts folder (notebook 02's artifact is read only without TensorFlow).
        data_dir: the data folder (read only with TensorFlow).
        tokenizer: the WordPiece tokenizer of the vocabulary the encoder was trained with.
        label_budget: `LABEL_BUDGET`: a class-balanced sample of this many training rows, 0 for all.
        seed: the sample's seed.

    Returns:
        A `LabelledSST2`.
    """

    if tensorflow_available():
        pool_sentences, pool_labels = load_sst2(data_dir, "train")
        train_sentences, train_labels = sample_labelled(pool_sentences, pool_labels, label_budget, seed)
        dev_sentences, dev_labels = load_sst2(data_dir, "dev")
        train_tokens = tokenize_texts(tokenizer, train_sentences)
        pool_tokens = train_tokens if label_budget == 0 else (lambda: tokenize_texts(tokenizer, pool_sentences))
        return LabelledSST2(train_tokens, train_labels, tokenize_texts(tokenizer, dev_sentences), dev_labels,
                            pool_labels, pool_sentences, dev_sentences, None, pool_tokens)
    with np.load(require_artifact(artifacts_dir, "02_mlm_data", files=(SST2_ARRAYS,)) / SST2_ARRAYS) as arrays:
        arrays = dict(arrays)
    if arrays["train_token_ids"].shape[1] != tokenizer.sequence_length:
        raise ValueError(f"{SST2_ARRAYS} of notebook 02 holds {arrays['train_token_ids'].shape[1]}-token rows, the "
                         f"encoder reads {tokenizer.sequence_length}: re-run notebook 02, then 03, where TensorFlow is.")
    pool_labels = arrays["train_labels"].tolist()
    rows, train_labels = sample_labelled(np.arange(len(pool_labels)), pool_labels, label_budget, seed)
    return LabelledSST2(arrays["train_token_ids"][rows], train_labels, arrays["dev_token_ids"],
                        arrays["dev_labels"].tolist(), pool_labels,
                        split_rows(arrays["train_word_ids"], arrays["train_word_counts"]),
                        split_rows(arrays["dev_word_ids"], arrays["dev_word_counts"]),
                        arrays["words"], arrays["train_token_ids"])


def write_sst2_arrays(path, tokenizer, data_dir):
    """Notebook 02: SST-2's training and dev sentences tokenized, their labels and words, into `path`.

    What `labelled_sst2` reads where TensorFlow is not installed: the WordPiece ids (this
    tokenizer, its sequence length), the labels, and each sentence's words as `TextVectorization`
    splits them (for the bag of words' multi-hot vectors). Needs TensorFlow.

    Returns:
        Rows per split, e.g. `{"train": 67349, "dev": 872}`.
    """
    splits = {split: load_sst2(data_dir, split) for split in ("train", "dev")}
    words, word_ids, counts = sentence_words(splits["train"][0] + splits["dev"][0])
    rows = len(splits["train"][0])
    arrays = {"words": words}
    for split, (sentences, labels) in splits.items():
        part = slice(0, rows) if split == "train" else slice(rows, None)
        start = int(np.sum(counts[:rows])) if split == "dev" else 0
        arrays.update({f"{split}_token_ids": tokenize_texts(tokenizer, sentences),
                       f"{split}_labels": np.asarray(labels, "int32"),
                       f"{split}_word_ids": word_ids[start : start + int(np.sum(counts[part]))],
                       f"{split}_word_counts": counts[part]})
    np.savez_compressed(path, **arrays)
    return {split: len(sentences) for split, (sentences, _) in splits.items()}

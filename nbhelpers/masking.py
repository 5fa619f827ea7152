"""Masked-language-model masking: the rule, applied in `tf.data` (`MaskGenerator`) or inside the step (`SelfMaskingMLM`).

The masking follows keras-hub's `MaskedLMMaskGenerator` (and the tf-text ops under it): of the
tokens that are not `[PAD]`/`[CLS]`/`[SEP]` (`NEVER_MASKED`), `ceil(mask_rate * count)` are
chosen at random, at most `predictions_per_sequence`; of those, 80 % become `[MASK]`, 10 % a
random token and 10 % stay.

Two places apply it. `MaskGenerator` masks in TensorFlow inside `tf.data`, after batching, so
every epoch draws new masks ("dynamic masking") while the tokenization is done once
(`nbhelpers.batches.mlm_dataset`). It draws its random numbers with stateless ops from an
explicit seed per batch because keras-hub's generator cannot be seeded inside `tf.data`, so a
run would not repeat. `SelfMaskingMLM` takes raw token ids and masks them inside the compiled
training step with `keras.ops`, on TensorFlow, JAX or PyTorch and on the accelerator (notebook 03
where TensorFlow is not installed). Both split the work into `draws` (the random numbers) and
`mask_with` (the rule applied to them): given the same draws they mask alike, id for id
(`tests/test_masking.py`), and both agree with keras-hub statistically.

Example:

>>> import numpy as np
>>> masker = MaskGenerator(vocabulary_size=10, mask_token_id=4, unselectable_ids=(0, 2, 3),
...                        mask_rate=1.0, predictions_per_sequence=3, mask_token_rate=1.0,
...                        random_token_rate=0.0)
>>> masked = masker(np.array([[2, 7, 8, 3, 0]]), seed=np.array([1, 2]))
>>> masked["token_ids"].numpy().tolist(), masked["mask_ids"].numpy().tolist()
([[2, 4, 4, 3, 0]], [[7, 8, 0]])
"""

import dataclasses

import keras
import numpy as np
from keras import ops

from nbhelpers.tokenization import MASK, NEVER_MASKED, PAD

# TensorFlow is imported by the functions of the `tf.data` side: `SelfMaskingMLM` trains without
# it (notebook 03 on a JAX-only machine).


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
    >>> out = masker(np.array([[2, 17, 18, 3, 0]]), seed=np.array([1, 2]))
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
        import tensorflow as tf

        token_ids = tf.convert_to_tensor(token_ids, tf.int32)
        return self.mask_with(token_ids, self.draws(tf.shape(token_ids), seed))

    def draws(self, shape, seed):
        """The random numbers that mask a batch of `shape` `(batch, length)`, from a shape-`(2,)` seed.

        Returns:
            A dict: `priority`, uniform in [0, 1) per token; `replacement`, uniform per prediction
            slot (it picks `[MASK]`, a random token or the original); `random_token`, an id per slot.
        """
        import tensorflow as tf

        select_seed, value_seed, token_seed = tf.unstack(
            tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
        )
        slots = [shape[0], self.predictions_per_sequence]
        return {
            "priority": tf.random.stateless_uniform(shape, select_seed),
            "replacement": tf.random.stateless_uniform(slots, value_seed),
            "random_token": tf.random.stateless_uniform(
                slots, token_seed, minval=0, maxval=self.vocabulary_size, dtype=tf.int32
            ),
        }

    def mask_with(self, token_ids, draws):
        """Mask a `(batch, length)` int32 tensor with the random numbers `draws` (as `draws` returns them).

        `SelfMaskingMLM.mask_with` applies the same rule with `keras.ops`: given the same draws,
        both mask alike (`tests/test_masking.py` checks it id for id).
        """
        import tensorflow as tf

        length = tf.shape(token_ids)[1]
        count = self.predictions_per_sequence
        selectable = tf.reduce_all(
            token_ids[:, :, None] != tf.constant(self.unselectable_ids, tf.int32), axis=-1
        )
        to_choose = tf.math.ceil(tf.reduce_sum(tf.cast(selectable, tf.float32), 1) * self.mask_rate)
        to_choose = tf.minimum(tf.cast(to_choose, tf.int32), count)
        # A random priority per selectable token; the `to_choose` highest are a uniform sample.
        priority = tf.where(selectable, draws["priority"], -1.0)
        _, chosen = tf.math.top_k(priority, k=tf.minimum(count, length))
        chosen = tf.pad(chosen, [[0, 0], [0, count - tf.shape(chosen)[1]]])
        keep = tf.range(count)[None, :] < to_choose[:, None]
        # Sorted positions, the chosen first; unused slots point at position 0 with weight 0.
        positions = tf.sort(tf.where(keep, chosen, length), axis=-1)
        keep = positions < length
        positions = tf.where(keep, positions, 0)
        originals = tf.gather(token_ids, positions, batch_dims=1)

        draw = draws["replacement"]
        replacements = tf.where(
            draw < self.mask_token_rate,
            self.mask_token_id,
            tf.where(draw < self.mask_token_rate + self.random_token_rate, draws["random_token"], originals),
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
        mask_token_id=tokenizer.token_to_id(MASK),
        unselectable_ids=tuple(tokenizer.token_to_id(t) for t in NEVER_MASKED),
        mask_rate=mask_rate,
        predictions_per_sequence=predictions_per_sequence,
        mask_token_rate=mask_token_rate,
        random_token_rate=random_token_rate,
    )


def mask_batch(mask_generator, token_ids, seed=(0, 0)):
    """Mask a batch of token ids into the `(features, labels, sample_weight)` Keras expects."""
    import tensorflow as tf

    masked = mask_generator(token_ids, tf.convert_to_tensor(seed, tf.int64))
    features = {"token_ids": masked["token_ids"], "mask_positions": masked["mask_positions"]}
    return features, masked["mask_ids"], masked["mask_weights"]


def describe_masking(tokenizer, features, labels, sample_weight, limit=3):
    """Decode a few masked sequences for reading: the input as the model sees it, and the answers.

    Returns:
        A list of `(masked_text, answers)`, where `answers` lists `position: original token`.
    """
    pad_id = tokenizer.token_to_id(PAD)
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


def write_at_positions(token_ids, positions, in_use, values):
    """`token_ids` `(batch, length)` with `values[b, slot]` written at `positions[b, slot]` where `in_use`.

    Slots not in use change nothing (their position may be anything). Done with a one-hot
    `(batch, slots, length)` comparison rather than a scatter, which every backend compiles alike.
    """
    length = ops.shape(token_ids)[1]
    # `hits[b, slot, i]`: whether that slot writes position i.
    hits = ops.logical_and(
        ops.equal(positions[:, :, None], ops.arange(length, dtype="int32")[None, None, :]), in_use[:, :, None]
    )
    hits = ops.cast(hits, "int32")
    written = ops.max(hits, axis=1) > 0
    return ops.where(written, ops.sum(hits * ops.cast(values, "int32")[:, :, None], axis=1), token_ids)


class SelfMaskingMLM(keras.Model):
    """Trains a masked-language model on raw token ids, drawing new masks in every step.

    Each step masks the batch as `MaskGenerator` does, with `keras.ops`: of the tokens
    that are not in `unselectable_ids`, `ceil(mask_rate * count)` are chosen uniformly at random,
    at most `predictions_per_sequence`; of those, `mask_token_rate` become `mask_token_id`,
    `random_token_rate` a random token and the rest stay. The inner `pretrainer` then predicts
    the chosen tokens, and the loss is the sparse categorical cross-entropy weighted by the mask
    weights (unused prediction slots weigh 0), as in the `tf.data` pipeline; the accuracy over
    the chosen tokens is logged as `sparse_categorical_accuracy`.

    The random numbers come from a `keras.random.SeedGenerator` kept in the model's state, so a
    run with the same `seed` repeats, and every step (and epoch) draws new masks. Evaluation
    masks too, from the same generator. The loss and metric are built in: compile with an optimizer
    alone, or as the pretraining model is compiled on `tf.data`'s masked batches
    (`loss="sparse_categorical_crossentropy"`, `weighted_metrics`). Losses added with `add_loss`
    are not counted (our encoder has none).

    Saving: the encoder inside is what is worth keeping; save it on its own with
    `encoder.save("encoder.keras")` (this wrapper has no config, and the pretraining model's tied
    head does not load from a `.keras` file). For resuming, `save_weights`/`load_weights` of this
    model keep the weights and the masks' seed state.

    Args:
        pretrainer: a pretraining model as made by `nbhelpers.models.build_pretraining_model`:
            inputs `{"token_ids", "mask_positions"}`, output a softmax (or logits, see `from_logits`) of shape
            `(batch, predictions_per_sequence, vocabulary_size)`. The number of predictions and
            the vocabulary size are read from its shapes.
        mask_token_id: the id of `[MASK]`.
        unselectable_ids: ids that are never chosen (`[PAD]`, `[CLS]`, `[SEP]`).
        mask_rate: the share of selectable tokens chosen for prediction (rounded up).
        mask_token_rate: of the chosen tokens, the share replaced by `[MASK]`.
        random_token_rate: the share replaced by a random token (the rest are kept).
        seed: an int seed for the masks; `None` draws one at random.
        from_logits: the pretrainer returns logits (built with `activation=None`), not a softmax.
        **kwargs: passed to `keras.Model` (for example `name`).

    Example:

    >>> from nbhelpers.models import build_encoder, build_pretraining_model
    >>> encoder = build_encoder(vocabulary_size=100, sequence_length=16, num_layers=1,
    ...                         model_dim=16, num_heads=2, intermediate_dim=32, dropout=0.1)
    >>> model = SelfMaskingMLM(build_pretraining_model(encoder, predictions_per_sequence=4),
    ...                        mask_token_id=4, unselectable_ids=(0, 2, 3), mask_rate=0.2, seed=1)
    >>> model.compile(optimizer="adam")
    >>> token_ids = np.random.default_rng(0).integers(5, 100, size=(64, 16))  # no labels: it masks them
    >>> history = model.fit(token_ids, batch_size=32, epochs=2, verbose=0)
    >>> sorted(history.history)
    ['loss', 'sparse_categorical_accuracy']
    >>> encoder.save("encoder.keras")
    """

    def __init__(
        self,
        pretrainer,
        mask_token_id,
        unselectable_ids,
        mask_rate,
        mask_token_rate=0.8,
        random_token_rate=0.1,
        seed=None,
        from_logits=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.pretrainer = pretrainer
        self.predictions_per_sequence = int(pretrainer.input["mask_positions"].shape[-1])
        self.vocabulary_size = int(pretrainer.output.shape[-1])
        self.mask_token_id = int(mask_token_id)
        self.unselectable_ids = tuple(int(i) for i in unselectable_ids)
        self.mask_rate = float(mask_rate)
        self.mask_token_rate = float(mask_token_rate)
        self.random_token_rate = float(random_token_rate)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.from_logits = bool(from_logits)
        self.mlm_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=self.from_logits)
        # Kept out of Keras's tracking (see `metrics`): `compile(weighted_metrics=...)` replaces them.
        self._chosen = _Metrics([keras.metrics.SparseCategoricalAccuracy(name="sparse_categorical_accuracy")])

    def mask(self, token_ids):
        """Mask a `(batch, length)` int batch, drawing from (and advancing) the seed generator.

        Returns:
            A dict like `MaskGenerator`'s: `token_ids` (masked), `mask_positions` (sorted, the
            chosen first; unused slots point at 0), `mask_ids` (the original tokens there, 0 in
            unused slots) and `mask_weights` (1.0 for a chosen token, 0.0 for an unused slot).
        """
        token_ids = ops.cast(token_ids, "int32")
        return self.mask_with(token_ids, self.draws(ops.shape(token_ids)))

    def draws(self, shape):
        """The random numbers that mask a batch of `shape` `(batch, length)`, as `MaskGenerator.draws` returns them."""
        slots = (shape[0], self.predictions_per_sequence)
        return {
            "priority": keras.random.uniform(shape, seed=self.seed_generator, dtype="float32"),
            "replacement": keras.random.uniform(slots, seed=self.seed_generator, dtype="float32"),
            "random_token": keras.random.randint(slots, 0, self.vocabulary_size, dtype="int32",
                                                 seed=self.seed_generator),
        }

    def mask_with(self, token_ids, draws):
        """Mask a `(batch, length)` int32 batch with the random numbers `draws`: `MaskGenerator.mask_with`'s rule."""
        batch, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
        count = self.predictions_per_sequence
        selectable = ops.all(
            ops.not_equal(token_ids[:, :, None], ops.array(self.unselectable_ids, "int32")), axis=-1
        )
        to_choose = ops.ceil(ops.sum(ops.cast(selectable, "float32"), axis=1) * self.mask_rate)
        to_choose = ops.minimum(ops.cast(to_choose, "int32"), count)
        # A random priority per selectable token (unselectable ones rank below); the `to_choose`
        # highest are a uniform sample. `count` extra columns, ranked lowest, let `top_k` take
        # `count` even from a sequence shorter than that.
        priority = ops.where(selectable, draws["priority"], -1.0)
        priority = ops.concatenate([priority, ops.full((batch, count), -2.0, "float32")], axis=1)
        _, chosen = ops.top_k(priority, k=count)
        in_use = ops.arange(count, dtype="int32")[None, :] < to_choose[:, None]
        # Sorted positions, the chosen first; unused slots point at position 0 with weight 0.
        positions = ops.sort(ops.where(in_use, ops.cast(chosen, "int32"), length), axis=-1)
        in_use = positions < length
        positions = ops.where(in_use, positions, 0)
        originals = ops.take_along_axis(token_ids, positions, axis=1)

        draw = draws["replacement"]
        replacements = ops.where(
            draw < self.mask_token_rate,
            self.mask_token_id,
            ops.where(draw < self.mask_token_rate + self.random_token_rate, draws["random_token"], originals),
        )
        masked = write_at_positions(token_ids, positions, in_use, replacements)
        return {
            "token_ids": masked,
            "mask_positions": positions,
            "mask_ids": ops.where(in_use, originals, 0),
            "mask_weights": ops.cast(in_use, "float32"),
        }

    def call(self, token_ids, training=False):
        """Mask `token_ids` and predict the chosen tokens.

        Returns:
            A dict: `predictions` (the inner model's softmax or logits) and the `mask_ids` and
            `mask_weights` that the loss and metric compare it with.
        """
        masked = self.mask(token_ids)
        predictions = self.pretrainer(
            {"token_ids": masked["token_ids"], "mask_positions": masked["mask_positions"]},
            training=training,
        )
        return {"predictions": predictions, "mask_ids": masked["mask_ids"], "mask_weights": masked["mask_weights"]}

    def save_own_variables(self, store):
        # Keras leaves a SeedGenerator's state out of saved weights; keep it, so that a run
        # resumed from `save_weights` (as `BackupAndRestore` does) goes on drawing new masks.
        super().save_own_variables(store)
        store["mask_seed_state"] = self.seed_generator.state

    def load_own_variables(self, store):
        # The seed state is this wrapper's only state of its own (the weights are the
        # pretrainer's); files saved before it was kept lack it.
        if "mask_seed_state" in store:
            self.seed_generator.state.assign(store["mask_seed_state"])

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        # The labels are made in `call`, so `y` and `sample_weight` from `fit` are unused.
        return self.mlm_loss(y_pred["mask_ids"], y_pred["predictions"], sample_weight=y_pred["mask_weights"])

    def compile(self, optimizer="rmsprop", loss=None, weighted_metrics=None, **kwargs):
        """Keras's `compile`, called as for the inner pretraining model on `tf.data`'s masked batches.

        Args:
            optimizer: as Keras's.
            loss: `None` or `"sparse_categorical_crossentropy"`: the loss is built in (over the
                chosen tokens, weighted by the mask weights; from logits if `from_logits`).
            weighted_metrics: Keras metrics (instances) over the chosen tokens, each updated with
                their original ids, the predictions and the mask weights; they replace the
                default `sparse_categorical_accuracy`.
            **kwargs: passed on (`jit_compile`, `steps_per_execution`, ...); not `metrics`.
        """
        if loss not in (None, "sparse_categorical_crossentropy"):
            raise ValueError(f"SelfMaskingMLM's loss is built in (the sparse categorical cross-entropy of the chosen "
                             f"tokens): compile without loss={loss!r}.")
        if kwargs.pop("metrics", None) is not None:
            raise ValueError("SelfMaskingMLM weighs its metrics by the mask weights: pass them as weighted_metrics.")
        if weighted_metrics is not None:
            if not all(isinstance(metric, keras.metrics.Metric) for metric in weighted_metrics):
                raise ValueError(f"weighted_metrics={weighted_metrics!r}: give Keras metric objects, "
                                 "e.g. keras.metrics.SparseCategoricalAccuracy().")
            self._chosen = _Metrics(list(weighted_metrics))
        super().compile(optimizer=optimizer, **kwargs)

    @property
    def metrics(self):
        # The chosen tokens' metrics after Keras's own (the loss): the trainers take their
        # variables from here, on every backend.
        return [*super().metrics, *self._chosen.metrics]

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        for metric in self._chosen.metrics:
            metric.update_state(y_pred["mask_ids"], y_pred["predictions"], sample_weight=y_pred["mask_weights"])
        return self.get_metrics_result()


class _Metrics:
    """A list of metrics that Keras's attribute tracking does not look into (it would keep replaced ones)."""

    def __init__(self, metrics):
        self.metrics = metrics

"""Fine-tuning recipes that keep more of what pretraining learned (notebook 04's `FINETUNE_RECIPE`).

Fine-tuning every weight on SST-2 fits films well and can distort the pretrained features that
text from elsewhere needs (Kumar et al., ICLR 2022, "Fine-Tuning can Distort Pretrained Features
and Underperform Out-of-Distribution"). A recipe is "plain" or one or more of these levers,
joined by "+" (e.g. "lp_ft+averaged"):

- `lp_ft`: a linear probe first: the sigmoid head alone is fitted to the frozen encoder's pooled
  features (logistic regression), then everything is fine-tuned from that head, so the first
  steps do not push the encoder around to fit a random head (LP-FT, Kumar et al.).
- `slow_embedding`: the token embedding stays as pretraining left it (frozen; the other weights
  fine-tune): words that SST-2 never shows keep their place beside those it does.
- `averaged`: the weights are averaged over the second half of fine-tuning (12 or so evenly
  spaced snapshots, the last at the end), as stochastic weight averaging does (Izmailov et al.,
  UAI 2018).

Which recipe holds up outside films was chosen by the product-review check
(`docs/results/out-of-domain.md`), among these named recipes only: no value was fitted to it.

Usage (names as in the notebooks):

    from nbhelpers.models import build_classifier
    classifier = build_classifier(encoder)
    callbacks = prepare_recipe(classifier, "lp_ft+averaged", train_ds, total_steps=2 * steps_per_epoch, seed=42)
    classifier = compile_classifier(classifier, finetuning_optimizer(7e-5))
    classifier.fit(train_ds.repeat(), epochs=2, steps_per_epoch=steps_per_epoch, callbacks=callbacks)
"""

import keras
import numpy as np

from nbhelpers.models import EMBEDDING_LAYER

LEVERS = ("lp_ft", "slow_embedding", "averaged")
# The recipes the out-of-domain comparison ran, by name; any "+"-joined set of LEVERS is accepted.
RECIPES = ("plain", "lp_ft", "slow_embedding", "averaged", "lp_ft+averaged", "lp_ft+slow_embedding+averaged")
# The classifier's head (`nbhelpers.models.build_classifier`).
HEAD_LAYER = "sentiment"
# The linear probe: logistic regression on the pooled features, Adam, fixed settings (not tuned).
PROBE_EPOCHS = 10
PROBE_BATCH_SIZE = 256
PROBE_LEARNING_RATE = 1e-2
# Weight averaging: from this share of the steps on, this many evenly spaced snapshots after it.
AVERAGE_FROM = 0.5
AVERAGE_SNAPSHOTS = 10


def parse_recipe(recipe):
    """The levers of a recipe name: "plain" -> set(), "lp_ft+averaged" -> {"lp_ft", "averaged"}.

    >>> sorted(parse_recipe("averaged+lp_ft"))
    ['averaged', 'lp_ft']
    >>> parse_recipe("plain")
    frozenset()
    """
    if not isinstance(recipe, str):
        raise ValueError(f"FINETUNE_RECIPE = {recipe!r}: give a recipe name such as \"plain\" or \"lp_ft+averaged\".")
    parts = [part.strip() for part in recipe.split("+")]
    if parts == ["plain"]:
        return frozenset()
    unknown = [part for part in parts if part not in LEVERS]
    if unknown or len(set(parts)) != len(parts):
        raise ValueError(f"FINETUNE_RECIPE = {recipe!r}: use \"plain\" or one or more of {', '.join(LEVERS)} "
                         f"joined by \"+\" (e.g. \"lp_ft+averaged\").")
    return frozenset(parts)


def pooled_features(classifier, dataset):
    """The head's inputs (the pooled encoder output) and the labels of a `(token_ids, label)` dataset, as arrays."""
    features_of = keras.Model(classifier.input, classifier.get_layer(HEAD_LAYER).input)
    features, labels = [], []
    for token_ids, batch_labels in dataset:
        features.append(keras.ops.convert_to_numpy(features_of(token_ids, training=False)).astype("float32"))
        labels.append(np.asarray(batch_labels, "float32").reshape(-1))
    return np.concatenate(features), np.concatenate(labels)


def linear_probe(classifier, dataset, epochs=PROBE_EPOCHS, batch_size=PROBE_BATCH_SIZE,
                 learning_rate=PROBE_LEARNING_RATE, seed=0):
    """Fit the classifier's head alone to the frozen encoder's features (LP-FT's first stage).

    The encoder's weights are not touched: its pooled features are computed once, and a copy of
    the head (starting from the head's weights) is trained on them, then copied into the head.

    Args:
        classifier: a `build_classifier` model.
        dataset: finite `(token_ids, label)` batches, e.g. `classification_dataset(...)`.
        epochs, batch_size, learning_rate: the logistic regression's Adam settings.
        seed: the shuffling of the features.

    Returns:
        The probe's training accuracy after its last epoch.
    """
    features, labels = pooled_features(classifier, dataset)
    head = classifier.get_layer(HEAD_LAYER)
    inputs = keras.Input(shape=(features.shape[1],))
    probe_head = keras.layers.Dense(1, activation="sigmoid", dtype="float32")
    probe = keras.Model(inputs, probe_head(inputs))
    probe_head.set_weights(head.get_weights())
    probe.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(learning_rate), metrics=["accuracy"])
    order = np.random.default_rng(seed).permutation(len(labels))
    history = probe.fit(features[order], labels[order], batch_size=batch_size, epochs=epochs, verbose=0, shuffle=True)
    head.set_weights(probe_head.get_weights())
    return float(history.history["accuracy"][-1])


def freeze_token_embedding(classifier):
    """Keep the encoder's token embedding as it is during fine-tuning (call before compiling)."""
    embedding = _find_layer(classifier, EMBEDDING_LAYER)
    embedding.token_embedding.trainable = False
    return embedding.token_embedding


def _find_layer(model, name):
    for layer in model._flatten_layers(include_self=False):
        if layer.name == name:
            return layer
    raise ValueError(f"The model {model.name!r} has no layer {name!r}: build it with nbhelpers.models.build_classifier.")


class WeightAveraging(keras.callbacks.Callback):
    """Averages the trainable weights over snapshots taken during `fit`, and by default puts the mean in place.

    A snapshot is taken after step `start_step` and every `every` steps after it (steps counted
    across the epochs of one `fit`), and at the end of training. The callback only reads the
    weights until `fit` ends, so training follows the same path with it as without it: the
    weights at the end are the plain recipe's, and `apply` then gives the averaged ones. (With
    `nbhelpers.optimizers.FusedAdamW`'s lazy updates, an embedding row enters a snapshot as last
    updated; the end of training is a snapshot after `fit` has brought every row up to date.)

    Args:
        start_step: the step after which the first snapshot is taken (1 for the first step).
        every: steps between two snapshots.
        assign: put the mean in place when training ends (`False`: call `apply` yourself).

    Usage (names as in the notebooks):

        averaging = WeightAveraging(start_step=2105, every=210)
        model.fit(train, epochs=2, steps_per_epoch=2105, callbacks=[averaging])
        averaging.snapshots  # after steps 2105, 2315, ..., 4205, and the last, 4210
    """

    def __init__(self, start_step, every, assign=True):
        super().__init__()
        if start_step < 1 or every < 1:
            raise ValueError(f"WeightAveraging(start_step={start_step}, every={every}): both must be at least 1.")
        self.start_step, self.every, self.assign = start_step, every, assign

    @classmethod
    def for_steps(cls, total_steps, assign=True):
        """Snapshots over the last `1 - AVERAGE_FROM` of `total_steps`, `AVERAGE_SNAPSHOTS` apart and the end."""
        start = max(1, int(AVERAGE_FROM * total_steps))
        return cls(start, max(1, (total_steps - start) // AVERAGE_SNAPSHOTS), assign=assign)

    def on_train_begin(self, logs=None):
        self.step, self.snapshots, self._sums, self._last_snapshot = 0, 0, None, None

    def _snapshot(self):
        values = [keras.ops.convert_to_numpy(v).astype("float64") for v in self.model.trainable_variables]
        self._sums = values if self._sums is None else [s + v for s, v in zip(self._sums, values)]
        self.snapshots += 1
        self._last_snapshot = self.step

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step >= self.start_step and (self.step - self.start_step) % self.every == 0:
            self._snapshot()

    def on_train_end(self, logs=None):
        # `fit` has finalized the optimizer's lazy rows by now: the end of training is a snapshot too.
        if self._last_snapshot != self.step:
            self._snapshot()
        if self.assign:
            self.apply()

    def apply(self):
        """Set each trainable weight of the model to the mean of its snapshots."""
        if not self.snapshots:
            raise ValueError("WeightAveraging.apply: no snapshot was taken; train with this callback first.")
        for variable, total in zip(self.model.trainable_variables, self._sums):
            variable.assign((total / self.snapshots).astype(variable.dtype))


def prepare_recipe(classifier, recipe, train_dataset, total_steps, seed=0, log=print):
    """Apply a recipe's steps before fine-tuning; returns the callbacks its `fit` needs.

    Call after building the classifier and before `compile_classifier`: `lp_ft` fits the head
    (`linear_probe` on `train_dataset`, a finite dataset), `slow_embedding` freezes the token
    embedding, and `averaged` returns a `WeightAveraging` over the second half of `total_steps`.

    Args:
        classifier: a `build_classifier` model.
        recipe: a name `parse_recipe` reads ("plain", "lp_ft", "lp_ft+averaged", ...).
        train_dataset: the fine-tuning batches, one pass (used by `lp_ft` only).
        total_steps: the optimizer steps fine-tuning will take.
        seed: the linear probe's shuffling.
        log: called with a line about what was done.

    Returns:
        A list of callbacks for `fit` (empty unless `averaged`).
    """
    levers = parse_recipe(recipe)
    if "lp_ft" in levers:
        accuracy = linear_probe(classifier, train_dataset, seed=seed)
        log(f"linear probe on the frozen encoder: training accuracy {accuracy:.3f}")
    if "slow_embedding" in levers:
        frozen = freeze_token_embedding(classifier)
        log(f"token embedding frozen ({int(np.prod(frozen.embeddings.shape)):,} weights)")
    callbacks = []
    if "averaged" in levers:
        averaging = WeightAveraging.for_steps(total_steps)
        callbacks.append(averaging)
        log(f"weights averaged from step {averaging.start_step:,} of {total_steps:,}, every {averaging.every:,} steps")
    return callbacks

"""The label-budget curve: SST-2 dev accuracy against the number of training labels, per arm.

Pretraining should pay most where labels are scarce. For each budget and seed, a class-balanced
sample of that many labels is drawn (`nbhelpers.data.sample_labelled`), a fifth of it is set
aside as a validation split, and each arm is trained on the rest; training stops at the epoch
with the best *validation* accuracy (`EarlyStopping(restore_best_weights=True)`). The dev set is
only scored at the end: it never chooses an epoch or a setting.

The three arms: the bag-of-words model of notebook 01, the transformer from random
initialisation, and the pretrained transformer. Each transformer arm is a `TransformerArm`: how
to build a fresh classifier (the masked-mean sigmoid head of `nbhelpers.models.build_classifier`,
or the pretrained MLM head read through a prompt, `nbhelpers.prompting`) and the token ids it reads.

Usage (names as in the notebooks):

    labelled = LabelledSplits(train_sentences, train_labels, dev_sentences, dev_labels)
    settings = CurveSettings(batch_size=32, learning_rate=2e-4, baseline_max_tokens=4000)
    arms = {"transformer, no pretraining": TransformerArm(new_classifier, train_tokens, dev_tokens),
            "transformer, pretrained": TransformerArm(pretrained_classifier, train_tokens, dev_tokens)}
    results = label_budget_curve(labelled, arms, budgets=[250, 1000], seeds=[0, 1, 2], settings=settings)
    results["accuracy"]["transformer, pretrained"]["250"]  # dev accuracy per seed
"""

import dataclasses
import functools
import math
import time

import keras
import numpy as np

from nbhelpers.baseline import build_baseline_model, make_multi_hot_vectorizer, multi_hot, multi_hot_columns
from nbhelpers.batches import NumpyBatches, classification_batches, in_order, multi_hot_dataset
from nbhelpers.data import sample_labelled
from nbhelpers.models import EMBEDDING_LAYER
from nbhelpers.training import (
    TrainingProgress, binary_accuracy, compile_classifier, finetuning_optimizer, repeated_epochs, set_seed,
)

# The arms, in the order tables and plots show them (the names notebook 04 uses throughout).
ARMS = ("bag of words", "transformer, no pretraining", "transformer, pretrained")
VALIDATION_SHARE = 0.2


@dataclasses.dataclass(frozen=True)
class LabelledSplits:
    """SST-2's labelled training pool and its dev set, as sentences and labels.

    Without TensorFlow (`nbhelpers.batches.labelled_sst2`), each "sentence" is the array of its
    word ids into `words`, and the bag of words makes its multi-hot vectors in NumPy.
    """

    train_sentences: list
    train_labels: list
    dev_sentences: list
    dev_labels: list
    words: object = None


@dataclasses.dataclass(frozen=True)
class TransformerArm:
    """One transformer arm of the curve.

    Args:
        make_classifier: returns a new, uncompiled sigmoid classifier (called once per run); with
            `CurveSettings.freeze_embedding`, one holding its encoder as a layer named "encoder"
            (as `build_classifier` and `build_prompt_classifier` do).
        train_tokens: token ids of the whole training pool, row i for `train_sentences[i]`.
        dev_tokens: token ids of the dev set.
    """

    make_classifier: object
    train_tokens: np.ndarray
    dev_tokens: np.ndarray


@dataclasses.dataclass(frozen=True)
class CurveSettings:
    """How each arm is trained at each budget.

    Args:
        batch_size: examples per batch, every arm.
        learning_rate: AdamW learning rate of both transformer arms (the bag of words uses Adam's 1e-3,
            as in notebook 01).
        baseline_max_tokens: the bag-of-words vocabulary size.
        min_steps: train for at least this many optimizer steps (more epochs on small budgets),
            so that 250 labels get as many updates as 4,000, not 16 times fewer.
        max_epochs: and at most this many epochs.
        patience: stop after this many epochs without a better validation accuracy.
        bucketed: length-bucketed batches for the transformers (`nbhelpers.batches.classification_batches`).
        freeze_embedding: keep both transformer arms' token embedding as it starts (pretrained,
            or random for the control) and train the rest. From a few hundred labels, training the
            embedding moves only the rows of the words the labels show, away from the
            never-labelled words that pretraining put beside them; frozen, whatever the model
            learns about a labelled word applies to its neighbours too.
    """

    batch_size: int
    learning_rate: float
    baseline_max_tokens: int
    min_steps: int = 300
    max_epochs: int = 30
    patience: int = 3
    bucketed: bool = True
    freeze_embedding: bool = False


def epochs_for(examples, settings):
    """Epochs to train on `examples` examples: enough for `min_steps` steps, within `max_epochs`.

    >>> epochs_for(200, CurveSettings(batch_size=32, learning_rate=1e-4, baseline_max_tokens=10))
    30
    >>> epochs_for(20000, CurveSettings(batch_size=32, learning_rate=1e-4, baseline_max_tokens=10))
    1
    """
    steps_per_epoch = math.ceil(examples / settings.batch_size)
    return max(1, min(settings.max_epochs, math.ceil(settings.min_steps / steps_per_epoch)))


def split_validation(indices, labels, seed, share=VALIDATION_SHARE):
    """Split `indices` into (train, validation) with `share` of each class in validation, seeded."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)[indices]
    train, validation = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.asarray(indices)[labels == label])
        cut = max(1, round(share * len(members)))
        validation += list(members[:cut])
        train += list(members[cut:])
    return sorted(train), sorted(validation)


def _fit_best_on_validation(model, train_ds, validation_ds, epochs, patience):
    """Train, keep the epoch with the best validation accuracy; returns (that epoch, its accuracy)."""
    stop = keras.callbacks.EarlyStopping(
        monitor="val_accuracy", mode="max", patience=patience, restore_best_weights=True
    )
    train_ds, steps_per_epoch = repeated_epochs(train_ds)
    accuracy = model.fit(
        train_ds, validation_data=validation_ds, epochs=epochs, steps_per_epoch=steps_per_epoch,
        # Many short fits: a progress line only where one runs longer than a minute.
        callbacks=[stop, TrainingProgress("label-budget run", every_epoch=False)], verbose=0, shuffle=False,
    ).history["val_accuracy"]
    return int(np.argmax(accuracy)) + 1, float(np.max(accuracy))


def fine_tune_bag_of_words(labelled, train, validation, seed, settings):
    """Train notebook 01's bag-of-words model on `train` indices.

    Returns (dev accuracy, best epoch, validation accuracy at that epoch)."""
    set_seed(seed)
    sentences = [labelled.train_sentences[i] for i in train]
    labels = [labelled.train_labels[i] for i in train]
    if labelled.words is None:  # TextVectorization in tf.data
        vectorizer = make_multi_hot_vectorizer(sentences, settings.baseline_max_tokens)
        size = vectorizer.vocabulary_size()

        def dataset(rows, labels, shuffle_seed=None):
            return multi_hot_dataset(vectorizer, rows, labels, settings.batch_size, shuffle_seed=shuffle_seed)
    else:  # the same vectors from NumPy, from the words notebook 02 split
        columns, size = multi_hot_columns(sentences, labelled.words, settings.baseline_max_tokens)

        def dataset(rows, labels, shuffle_seed=None):
            vectors = (multi_hot(rows, columns, size), np.asarray(labels, "float32"))
            return NumpyBatches(vectors, functools.partial(in_order, settings.batch_size, False, size), shuffle_seed)
    model = build_baseline_model(size)
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    train_ds = dataset(sentences, labels, shuffle_seed=seed)
    validation_ds = dataset([labelled.train_sentences[i] for i in validation],
                            [labelled.train_labels[i] for i in validation])
    best_epoch, validation_accuracy = _fit_best_on_validation(
        model, train_ds, validation_ds, epochs_for(len(train), settings), settings.patience
    )
    dev_ds = dataset(labelled.dev_sentences, labelled.dev_labels)
    return binary_accuracy(model, dev_ds), best_epoch, validation_accuracy


def fine_tune_transformer(arm, labelled, train, validation, seed, settings):
    """Fine-tune a new classifier of `arm` (a `TransformerArm`) on `train` indices.

    Returns (dev accuracy, best epoch, validation accuracy at that epoch)."""
    set_seed(seed)
    classifier = arm.make_classifier()
    if settings.freeze_embedding:
        encoder = next((layer for layer in classifier.layers if layer.name == "encoder"), None)
        if encoder is None:
            raise ValueError(f"freeze_embedding: the classifier {classifier.name!r} holds no layer named 'encoder' with "
                             "the token embedding; build it on an encoder of nbhelpers.models.build_encoder.")
        encoder.get_layer(EMBEDDING_LAYER).token_embedding.trainable = False
    classifier = compile_classifier(classifier, finetuning_optimizer(settings.learning_rate))
    labels = np.asarray(labelled.train_labels)

    def dataset(indices, shuffle_seed=None):
        return classification_batches(
            arm.train_tokens[indices], labels[indices], settings.batch_size,
            shuffle_seed=shuffle_seed, bucketed=settings.bucketed,
        )

    best_epoch, validation_accuracy = _fit_best_on_validation(
        classifier, dataset(train, seed), dataset(validation), epochs_for(len(train), settings), settings.patience
    )
    dev_ds = classification_batches(arm.dev_tokens, labelled.dev_labels, settings.batch_size, bucketed=settings.bucketed)
    return binary_accuracy(classifier, dev_ds), best_epoch, validation_accuracy


def label_budget_curve(labelled, transformers, budgets, seeds, settings, log=print):
    """Dev accuracy of the bag of words and of each transformer arm, per budget and seed.

    Args:
        labelled: a `LabelledSplits`.
        transformers: arm name -> `TransformerArm` (the bag of words always runs too).
        budgets: label counts (each includes its validation fifth).
        seeds: one run per seed: the sample, the validation split, the initialisation and the
            shuffling all follow it.
        settings: a `CurveSettings`.
        log: called with one line per run.

    Returns:
        `{"accuracy": {arm: {budget: [dev accuracy per seed]}}, "best_epoch": {...},
        "validation_accuracy": {...}, "seconds": {...}}`, budgets as strings (JSON keys).
    """
    result = {"accuracy": {}, "best_epoch": {}, "validation_accuracy": {}, "seconds": {}}
    for budget in budgets:
        for seed in seeds:
            sample = sample_labelled(np.arange(len(labelled.train_labels)), labelled.train_labels, budget, seed)[0]
            train, validation = split_validation(sample, labelled.train_labels, seed)
            runs = {ARMS[0]: lambda: fine_tune_bag_of_words(labelled, train, validation, seed, settings)}
            for arm, transformer in transformers.items():
                runs[arm] = lambda transformer=transformer: fine_tune_transformer(
                    transformer, labelled, train, validation, seed, settings
                )
            for arm, run in runs.items():
                start = time.perf_counter()
                accuracy, best_epoch, validation_accuracy = run()
                seconds = time.perf_counter() - start
                values = {"accuracy": accuracy, "best_epoch": best_epoch,
                          "validation_accuracy": validation_accuracy, "seconds": seconds}
                for key, value in values.items():
                    result[key].setdefault(arm, {}).setdefault(str(budget), []).append(value)
                log(f"{budget:>6} labels  seed {seed}  {arm:<28} dev {accuracy:.3f}  "
                    f"(best epoch {best_epoch}, {seconds:.0f} s)")
    return result


def parse_budgets(text):
    """Parse notebook 04's `CURVE_BUDGETS`: "250,1000,4000" -> [250, 1000, 4000]; "" -> [].

    >>> parse_budgets(" 250, 1000 ")
    [250, 1000]
    """
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not all(part.isdigit() and int(part) >= 4 for part in parts):
        raise ValueError(f"CURVE_BUDGETS = {text!r}: give label counts of at least 4, separated by commas "
                         "(for example \"250,1000,4000\"), or an empty string to skip the curve.")
    return sorted({int(part) for part in parts})


def summarize(accuracy):
    """`{arm: {budget: [values]}}` -> `{arm: {budget: (mean, standard deviation)}}`."""
    return {
        arm: {budget: (float(np.mean(values)), float(np.std(values))) for budget, values in per_budget.items()}
        for arm, per_budget in accuracy.items()
    }

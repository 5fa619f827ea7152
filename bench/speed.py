"""Side by side on one machine: the 2022 guide's training pipelines against this project's.

Both sides train the same model size (the guide's encoder: 3 layers, width 128, 2 heads, FFN
512, sequence length 128, the same vocabulary); only the pipelines differ.

- **Pretraining, useful tokens per second.** The guide keeps WikiText lines over 100
  characters, tokenizes them inside `tf.data` every epoch, truncates or pads each to 128 tokens,
  masks with keras-hub's generator and attends to padding. Ours reads token arrays made once,
  packs text end to end into full sequences (no padding), masks with the seeded masker and
  ignores `[PAD]` in attention. "Useful" tokens are the non-`[PAD]` tokens a step trains on.
- **Fine-tuning, seconds per epoch and dev accuracy.** The guide tokenizes SST-2 every epoch,
  pads every sentence to 128 tokens and averages over all positions, padding included. Ours
  tokenizes once, buckets batches by length (padded to 16/32/64/128) and averages over real
  tokens only. Both start from the same random initial weights (no pretraining: the pipeline is
  what is compared) and report dev accuracy after each epoch, and the time to reach
  `--target-accuracy`.

Run it alone on an idle machine (the ratios are what to read; absolute times vary):

    .venv/bin/python bench/speed.py --data-dir ../shared/data --out bench/results/cpu-2-cores.json

Without `--data-dir` it runs on the embedded synthetic data (for a quick look, not a record).
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from nbhelpers.data import find_vocabulary, load_sst2, load_wikitext, resolve_data_dir
from nbhelpers.masking import make_mask_generator, mlm_dataset
from nbhelpers.models import build_classifier, build_encoder, build_pretraining_model
from nbhelpers.tokenization import classification_dataset, make_tokenizer, pack_texts, tokenize_texts
from nbhelpers.training import binary_accuracy, compile_classifier, repeated_epochs, set_seed, use_xla

MODEL = dict(num_layers=3, model_dim=128, num_heads=2, intermediate_dim=512, dropout=0.1)
SEQUENCE_LENGTH = 128
MASK_RATE = 0.2
PREDICTIONS = 25
PRETRAIN_BATCH = 64
FINETUNE_BATCH = 32
FINETUNE_LEARNING_RATE = 1e-4


def guide_pretraining_data(tokenizer, paragraphs):
    """The guide's pipeline: text in, tokenize + mask in `map` every epoch, padded to 128."""
    masker = keras_hub.layers.MaskedLMMaskGenerator(
        vocabulary_size=tokenizer.vocabulary_size(), mask_selection_rate=MASK_RATE,
        mask_token_id=tokenizer.token_to_id("[MASK]"), mask_selection_length=PREDICTIONS,
    )

    def preprocess(texts):
        masked = masker(tokenizer(texts))
        features = {"token_ids": masked["token_ids"], "mask_positions": masked["mask_positions"]}
        return features, masked["mask_ids"], masked["mask_weights"]

    dataset = tf.data.Dataset.from_tensor_slices(paragraphs).batch(PRETRAIN_BATCH, drop_remainder=True)
    return dataset.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def pretraining_model(vocabulary_size, use_padding_mask):
    encoder = build_encoder(vocabulary_size, SEQUENCE_LENGTH, use_padding_mask=use_padding_mask, **MODEL)
    model = build_pretraining_model(encoder, PREDICTIONS)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.AdamW(5e-4),
                  weighted_metrics=["sparse_categorical_accuracy"], jit_compile=use_xla())
    return model


def time_pretraining(model, dataset, warmup_steps, steps):
    """Seconds for `steps` training steps after `warmup_steps`, and the useful tokens they saw."""
    model.fit(dataset.take(warmup_steps), verbose=0, shuffle=False)
    timed = dataset.skip(warmup_steps).take(steps).cache()
    useful = sum(int(np.sum(features["token_ids"].numpy() != 0)) for features, _, _ in timed)
    # The cached slice is re-read from memory, so the timing below includes the model step and
    # not the first pass of preprocessing; the guide's preprocessing cost is timed separately.
    start = time.perf_counter()
    model.fit(timed, verbose=0, shuffle=False)
    return time.perf_counter() - start, useful


def time_pipeline(dataset, steps):
    """Seconds to produce `steps` batches (the input pipeline alone)."""
    start = time.perf_counter()
    for _ in dataset.take(steps):
        pass
    return time.perf_counter() - start


def guide_classifier(vocabulary_size):
    encoder = build_encoder(vocabulary_size, SEQUENCE_LENGTH, use_padding_mask=False, **MODEL)
    token_ids = keras.Input(shape=(None,), dtype="int32")
    pooled = keras.layers.GlobalAveragePooling1D()(encoder(token_ids))  # padding included
    outputs = keras.layers.Dense(1, activation="sigmoid")(pooled)
    return keras.Model(token_ids, outputs)


def guide_classification_data(tokenizer, sentences, labels, shuffle_seed=None):
    dataset = tf.data.Dataset.from_tensor_slices((sentences, np.asarray(labels, "float32")))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(sentences), seed=shuffle_seed)
    dataset = dataset.batch(FINETUNE_BATCH).map(lambda s, y: (tokenizer(s), y), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


class _EpochTimer(keras.callbacks.Callback):
    """Each epoch's training seconds, then the dev accuracy (its time not counted)."""

    def __init__(self, dev):
        super().__init__()
        self.dev, self.seconds, self.accuracies = dev, [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)
        self.accuracies.append(binary_accuracy(self.model, self.dev))


def time_finetuning(model, train, dev, epochs, target):
    """Per-epoch seconds and dev accuracy; seconds of training until dev accuracy >= `target`.

    Both sides train on one iterator for all epochs (`repeated_epochs`), as notebook 04 does.
    """
    timer = _EpochTimer(dev)
    train, steps_per_epoch = repeated_epochs(train)
    model.fit(train, epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=[timer], verbose=0, shuffle=False)
    elapsed = np.cumsum(timer.seconds)
    reached = [float(t) for t, accuracy in zip(elapsed, timer.accuracies) if accuracy >= target]
    return {"seconds_per_epoch": timer.seconds, "dev_accuracy": timer.accuracies,
            "seconds_to_target": reached[0] if reached else None}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="", help="real data folder; empty: the synthetic data")
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--pretrain-steps", type=int, default=40, help="timed pretraining steps per side")
    parser.add_argument("--finetune-examples", type=int, default=0, help="SST-2 training sentences; 0: all")
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--target-accuracy", type=float, default=0.75)
    parser.add_argument("--out", default="", help="write the results as JSON here")
    args = parser.parse_args(argv)

    data_dir = resolve_data_dir(args.data_dir, "artifacts")
    vocabulary = find_vocabulary(data_dir)
    tokenizer = make_tokenizer(vocabulary, SEQUENCE_LENGTH)
    vocabulary_size = tokenizer.vocabulary_size()
    results = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                           "cpus": len(tf.config.list_physical_devices("CPU")), "xla": use_xla(),
                           "python": sys.version.split()[0], "tensorflow": tf.__version__,
                           "keras": keras.__version__, "keras_hub": keras_hub.__version__},
               "data_dir": str(data_dir), "model": {**MODEL, "sequence_length": SEQUENCE_LENGTH,
                                                    "vocabulary_size": vocabulary_size}}

    # Pretraining: WikiText paragraphs (the validation split: the real files here lack train).
    paragraphs = load_wikitext(data_dir, "valid")
    steps = args.warmup_steps + args.pretrain_steps
    set_seed(0)
    guide_data = guide_pretraining_data(tokenizer, paragraphs).repeat()
    guide_seconds, guide_useful = time_pretraining(pretraining_model(vocabulary_size, False), guide_data,
                                                   args.warmup_steps, args.pretrain_steps)
    guide_pipeline = time_pipeline(guide_data, steps)
    start = time.perf_counter()
    packed = pack_texts(tokenizer, paragraphs)  # once, like notebook 02 (not per epoch)
    ours_prepare = time.perf_counter() - start
    set_seed(0)
    ours_data = mlm_dataset(packed, make_mask_generator(tokenizer, MASK_RATE, PREDICTIONS), PRETRAIN_BATCH,
                            shuffle_seed=0).repeat()
    ours_seconds, ours_useful = time_pretraining(pretraining_model(vocabulary_size, True), ours_data,
                                                 args.warmup_steps, args.pretrain_steps)
    ours_pipeline = time_pipeline(ours_data, steps)
    # The guide re-tokenizes every step; its pipeline runs in parallel with training, so a
    # step costs at least the slower of the two. Ours tokenizes once per run.
    guide_rate = guide_useful / max(guide_seconds, guide_pipeline * args.pretrain_steps / steps)
    ours_rate = ours_useful / max(ours_seconds, ours_pipeline * args.pretrain_steps / steps)
    results["pretraining"] = {
        "steps": args.pretrain_steps, "batch": PRETRAIN_BATCH,
        "guide": {"seconds": guide_seconds, "pipeline_seconds": guide_pipeline * args.pretrain_steps / steps,
                  "useful_tokens": guide_useful, "useful_tokens_per_second": guide_rate,
                  "useful_share": guide_useful / (args.pretrain_steps * PRETRAIN_BATCH * SEQUENCE_LENGTH)},
        "ours": {"seconds": ours_seconds, "pipeline_seconds": ours_pipeline * args.pretrain_steps / steps,
                 "useful_tokens": ours_useful, "useful_tokens_per_second": ours_rate,
                 "useful_share": ours_useful / (args.pretrain_steps * PRETRAIN_BATCH * SEQUENCE_LENGTH),
                 "one_time_tokenize_seconds": ours_prepare},
        "useful_tokens_per_second_ratio": ours_rate / guide_rate,
    }

    # Fine-tuning from the same initial weights.
    sentences, labels = load_sst2(data_dir, "train")
    if args.finetune_examples:
        sentences, labels = sentences[: args.finetune_examples], labels[: args.finetune_examples]
    dev_sentences, dev_labels = load_sst2(data_dir, "dev")
    set_seed(0)
    guide_model = guide_classifier(vocabulary_size)
    ours_model = build_classifier(build_encoder(vocabulary_size, SEQUENCE_LENGTH, **MODEL))
    ours_model.set_weights(guide_model.get_weights())  # the same starting point
    for model in (guide_model, ours_model):
        compile_classifier(model, FINETUNE_LEARNING_RATE)
    guide = time_finetuning(
        guide_model, guide_classification_data(tokenizer, sentences, labels, shuffle_seed=0),
        guide_classification_data(tokenizer, dev_sentences, dev_labels), args.finetune_epochs, args.target_accuracy)
    start = time.perf_counter()
    train_tokens, dev_tokens = tokenize_texts(tokenizer, sentences), tokenize_texts(tokenizer, dev_sentences)
    ours_prepare = time.perf_counter() - start
    ours = time_finetuning(
        ours_model, classification_dataset(train_tokens, labels, FINETUNE_BATCH, shuffle_seed=0, bucketed=True),
        classification_dataset(dev_tokens, dev_labels, FINETUNE_BATCH, bucketed=True), args.finetune_epochs,
        args.target_accuracy)
    ours["one_time_tokenize_seconds"] = ours_prepare
    results["finetuning"] = {
        "train_sentences": len(sentences), "epochs": args.finetune_epochs, "target_accuracy": args.target_accuracy,
        "guide": guide, "ours": ours,
        "seconds_per_epoch_ratio": np.mean(guide["seconds_per_epoch"]) / np.mean(ours["seconds_per_epoch"]),
        # The first epoch also traces the step function once per bucket shape; later ones do not.
        "last_epoch_seconds_ratio": guide["seconds_per_epoch"][-1] / ours["seconds_per_epoch"][-1],
    }

    print(f"{'':<44}{'guide':>12}{'ours':>12}{'ratio':>8}")
    pre = results["pretraining"]
    print(f"{'pretraining: useful tokens / s':<44}{pre['guide']['useful_tokens_per_second']:>12,.0f}"
          f"{pre['ours']['useful_tokens_per_second']:>12,.0f}{pre['useful_tokens_per_second_ratio']:>8.2f}")
    print(f"{'pretraining: seconds per step':<44}{pre['guide']['seconds'] / pre['steps']:>12.2f}"
          f"{pre['ours']['seconds'] / pre['steps']:>12.2f}")
    print(f"{'pretraining: useful share of tokens':<44}{pre['guide']['useful_share']:>12.1%}{pre['ours']['useful_share']:>12.1%}")
    fine = results["finetuning"]
    print(f"{'fine-tuning: seconds / epoch':<44}{np.mean(guide['seconds_per_epoch']):>12.1f}"
          f"{np.mean(ours['seconds_per_epoch']):>12.1f}{fine['seconds_per_epoch_ratio']:>8.2f}")
    print(f"{'fine-tuning: seconds, last epoch':<44}{guide['seconds_per_epoch'][-1]:>12.1f}"
          f"{ours['seconds_per_epoch'][-1]:>12.1f}{fine['last_epoch_seconds_ratio']:>8.2f}")
    print(f"{'fine-tuning: dev accuracy per epoch':<44}{' '.join(f'{a:.3f}' for a in guide['dev_accuracy']):>12}"
          f"{' '.join(f'{a:.3f}' for a in ours['dev_accuracy']):>12}")
    to_target = [r["seconds_to_target"] for r in (guide, ours)]
    print(f"{f'fine-tuning: seconds to dev {args.target_accuracy}':<44}"
          + "".join(f"{t:>12.1f}" if t is not None else f"{'not reached':>12}" for t in to_target))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2, default=float) + "\n")
        print("wrote", args.out)
    return results


if __name__ == "__main__":
    main()

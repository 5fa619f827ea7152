"""Side by side on one machine: the 2022 guide's training pipelines against this project's.

Both sides train the same model size (the guide's encoder: 3 layers, width 128, 2 heads, FFN
512, sequence length 128, the same vocabulary and head); each side trains it its own way.

- **Pretraining, useful tokens per second.** The guide keeps WikiText lines over 100
  characters, tokenizes them inside `tf.data` every epoch, truncates or pads each to 128 tokens,
  masks with keras-hub's generator and attends to padding; its blocks are post-layer-norm with
  dropout 0.1. Ours reads token arrays made once, packs text end to end into full sequences (no
  padding), masks with the seeded masker, ignores `[PAD]` in attention and pretrains as the
  `cpu` profile does: pre-layer-norm blocks without dropout (dropout is for fine-tuning; in a
  short pretraining it only slows learning, and drawing its masks costs time on a CPU), logging
  the MLM accuracy with notebook 03's one-pass metric (`MaskedTokenAccuracy`) where the guide
  logs Keras's `sparse_categorical_accuracy` (the same value). "Useful" tokens are the
  non-`[PAD]` tokens a step trains on; a round's seconds run from the start of its first step
  to the end of its last.
- **Fine-tuning, seconds per epoch and dev accuracy.** The guide tokenizes SST-2 every epoch,
  pads every sentence to 128 tokens, averages over all positions, padding included, and updates
  with Keras's AdamW. Ours tokenizes once, buckets batches by length (`bucket_lengths`: padded to
  8, 12, 16, 24, 32, 48 or 64 tokens), averages over real tokens only and updates with
  `FusedAdamW` (AdamW in one pass over each variable on TensorFlow; the token embedding's rows
  only where the batch has a token, each first catching up on the steps it missed). Both start
  from the same random initial weights (no pretraining: the pipeline is what is compared), train the
  guide's 3 epochs and report dev accuracy after each epoch, and the time to reach
  `--target-accuracy`. Before the timed epochs each side builds its compiled step for every batch
  shape it will see (one for the guide's 128-token batches, a dozen for our buckets and their last,
  smaller batches); that one-off cost is reported on its own and in the whole run's total, not in
  the seconds per epoch.

**The sides take turns.** This 2-core machine's speed drifts by up to 1.6x over minutes, so
sides timed one after the other, minutes apart, gave ratios that moved by as much between two
runs. Every side therefore runs in its own process (the guide's in this one, ours in children,
one per Keras backend) and they train in turns, round robin: each turn is one `--chunks`-th of
an epoch (or of a timed pretraining round), so all sides move through the same phases together
and see the same drift. Each side's clock runs only during its own turns.

Run it alone on an idle machine (the ratios are what to read; absolute times vary):

    .venv/bin/python bench/speed.py --data-dir ../shared/data --out bench/results/cpu-2-cores.json

Without `--data-dir` it runs on the embedded synthetic data (for a quick look, not a record).
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from nbhelpers.data import find_vocabulary, load_sst2, load_wikitext, resolve_data_dir
from nbhelpers.batches import classification_dataset, mlm_dataset
from nbhelpers.masking import make_mask_generator
from nbhelpers.metrics import MaskedTokenAccuracy
from nbhelpers.models import build_classifier, build_encoder, build_pretraining_model
from nbhelpers.tokenization import make_tokenizer, pack_texts, tokenize_texts
from nbhelpers.training import (
    binary_accuracy, compile_classifier, finetuning_optimizer, repeated_epochs, set_seed, use_xla,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchlib.py, beside this script: bench/ is no package
from benchlib import describe_machine, rewire_encoder  # noqa: E402

MODEL = dict(num_layers=3, model_dim=128, num_heads=2, intermediate_dim=512, dropout=0.1)
# How each side pretrains that model: the guide's blocks, and the cpu profile's (params/cpu.yaml).
PRETRAINING_BLOCKS = {"guide": dict(dropout=0.1, normalize_first=False, use_padding_mask=False),
                      "ours": dict(dropout=0.0, normalize_first=True, use_padding_mask=True)}
SEQUENCE_LENGTH = 128
MASK_RATE = 0.2
PREDICTIONS = 25
PRETRAIN_BATCH = 64
FINETUNE_BATCH = 32
FINETUNE_LEARNING_RATE = 1e-4
BACKENDS = ("jax", "tensorflow")  # torch is not a dependency


class Turns(keras.callbacks.Callback):
    """This process's share of the machine: train for a turn, hand over, wait for the next turn.

    As a callback of every `fit`, it hands over after each `chunks`-th of an epoch's steps;
    `end_turn()` hands over anywhere else. `clock()` counts seconds of this side's turns
    only (the time spent waiting for the others is left out). `turns` records each turn as
    `(start, end)` in `time.time()` seconds, so a run can show that no two sides overlapped.

    Args:
        hand_over: called to let the other sides run; returns when this side's turn comes back.
            `None`: this side runs alone, never handing over.
        chunks: turns per epoch of a `fit`.
    """

    def __init__(self, hand_over=None, chunks=20):
        super().__init__()
        self.hand_over, self.chunks = hand_over, chunks
        self.waited, self.turns, self.turn_start = 0.0, [], time.time()

    def clock(self):
        return time.perf_counter() - self.waited

    def end_turn(self):
        if self.hand_over is None:
            return
        self.turns.append((self.turn_start, time.time()))
        start = time.perf_counter()
        self.hand_over()
        self.waited += time.perf_counter() - start
        self.turn_start = time.time()

    def finish(self):
        """Close the last turn (this side has no more work)."""
        if self.hand_over is not None:
            self.turns.append((self.turn_start, time.time()))
            self.hand_over = None

    def on_train_begin(self, logs=None):
        self.every = max(1, math.ceil((self.params.get("steps") or 1) / self.chunks))

    def on_train_batch_end(self, batch, logs=None):
        # Keras calls this after the step's results are ready (it reads `logs`), so no step of
        # this side is still running when the next side starts.
        if (batch + 1) % self.every == 0:
            self.end_turn()


class Children:
    """Our sides in child processes, one per Keras backend, each running when given a turn.

    A child says when its turn ends by writing a line to its pipe and waits for one back; it
    ends by closing the pipe (exiting). `run_turns` gives every live child one turn.
    """

    def __init__(self):
        self.live = []

    def start(self, command, env):
        to_child, from_child = os.pipe(), os.pipe()
        fds = f"{to_child[0]},{from_child[1]}"
        process = subprocess.Popen([*command, "--turn-fds", fds], env=env, pass_fds=(to_child[0], from_child[1]))
        os.close(to_child[0])
        os.close(from_child[1])
        child = (process, os.fdopen(to_child[1], "w"), os.fdopen(from_child[0]))
        if child[2].readline() == "":  # no first turn request (it is loaded and waiting): it failed
            self._finish(child)
            raise SystemExit(f"A side of the benchmark ended before it started: {' '.join(command)}")
        self.live.append(child)

    def run_turns(self):
        for child in list(self.live):
            process, to_child, from_child = child
            to_child.write("go\n")
            to_child.flush()
            if from_child.readline() == "":  # pipe closed: the child has finished its side
                self.live.remove(child)
                self._finish(child)

    def _finish(self, child):
        process, to_child, from_child = child
        to_child.close()
        from_child.close()
        if process.wait() != 0:
            raise SystemExit(f"A side of the benchmark failed in its child process ({' '.join(process.args)}): "
                             "see its error above.")


def child_hand_over(fds):
    """A child's `hand_over`: tell the parent this turn has ended and wait for the next."""
    read_fd, write_fd = (int(fd) for fd in fds.split(","))
    from_parent, to_parent = os.fdopen(read_fd), os.fdopen(write_fd, "w")

    def hand_over():
        to_parent.write("turn ended\n")
        to_parent.flush()
        if from_parent.readline() == "":
            raise SystemExit("The benchmark's parent process ended before this side finished.")

    return hand_over


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


def pretraining_model(vocabulary_size, side):
    blocks = dict(PRETRAINING_BLOCKS[side])
    use_padding_mask = blocks.pop("use_padding_mask")
    encoder = rewire_encoder(build_encoder(vocabulary_size, SEQUENCE_LENGTH, **{**MODEL, **blocks}), use_padding_mask)
    model = build_pretraining_model(encoder, PREDICTIONS)
    # The MLM accuracy each side logs: the guide's Keras metric, notebook 03's one-pass equivalent.
    accuracy = "sparse_categorical_accuracy" if side == "guide" else MaskedTokenAccuracy(name="sparse_categorical_accuracy")
    model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.AdamW(5e-4),
                  weighted_metrics=[accuracy], jit_compile=use_xla())
    return model


class _StepSpan(keras.callbacks.Callback):
    """This side's clock from the start of a `fit`'s first step to the end of its last.

    Not the whole `fit` call: ending a `tf.data` iterator can wait for its autotuning thread's
    next wake-up (periods of 10 ms that double: a 10-step `fit` measured 8.5 s of steps often
    returned at 10.23 s, one of 20 steps at 20.47 s), seconds that belong to neither recipe.
    """

    def __init__(self, turns):
        super().__init__()
        self.turns = turns

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            self.start = self.turns.clock()

    def on_train_batch_end(self, batch, logs=None):
        self.end = self.turns.clock()


def time_pretraining(model, dataset, warmup_steps, steps, turns):
    """Seconds for `steps` training steps after `warmup_steps`, and the useful tokens they saw."""
    model.fit(dataset.take(warmup_steps), verbose=0, shuffle=False, callbacks=[turns])
    timed = dataset.skip(warmup_steps).take(steps).cache()
    useful = sum(int(np.sum(features["token_ids"].numpy() != 0)) for features, _, _ in timed)
    # The cached slice is re-read from memory, so the timing below includes the model step and
    # not the first pass of preprocessing; the guide's preprocessing cost is timed separately.
    span = _StepSpan(turns)
    model.fit(timed, verbose=0, shuffle=False, callbacks=[span, turns])
    return span.end - span.start, useful


def time_pipeline(dataset, steps, turns):
    """Seconds to produce `steps` batches (the input pipeline alone, within one turn)."""
    start = turns.clock()
    for _ in dataset.take(steps):
        pass
    return turns.clock() - start


def guide_classifier(vocabulary_size):
    encoder = rewire_encoder(build_encoder(vocabulary_size, SEQUENCE_LENGTH, **MODEL), use_padding_mask=False)
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
    """Each epoch's training seconds on this side's clock, then the dev accuracy (its time not counted)."""

    def __init__(self, dev, turns):
        super().__init__()
        self.dev, self.turns, self.seconds, self.accuracies = dev, turns, [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = self.turns.clock()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(self.turns.clock() - self.start)
        self.accuracies.append(binary_accuracy(self.model, self.dev))


def compile_every_shape(model, train, turns):
    """Build the training step for every batch shape of `train` before the timed epochs; its seconds.

    A compiled step is built once per input shape (XLA under JAX) or per input signature
    (`tf.function`): a one-off cost per process, like our side's one-time tokenization, so it is
    timed on its own and kept out of the per-epoch seconds. One batch of each shape is trained on
    and then the weights and the optimizer's state are put back, so the timed epochs start from
    where they would have. Timed from the first step's start to the last step's end (`_StepSpan`).
    """
    batches = {}
    for x, y in train:  # untimed: only finds the shapes
        batches.setdefault(tuple(x.shape), (x, y))
    warmup = tf.data.Dataset.from_generator(lambda: iter(batches.values()), output_signature=train.element_spec)
    warmup = warmup.apply(tf.data.experimental.assert_cardinality(len(batches)))
    model.optimizer.build(model.trainable_variables)
    variables = model.variables + model.optimizer.variables
    saved = [keras.ops.convert_to_numpy(variable) for variable in variables]
    span = _StepSpan(turns)
    model.fit(warmup, verbose=0, shuffle=False, callbacks=[span])
    for variable, value in zip(variables, saved):
        variable.assign(value)
    return span.end - span.start, len(batches)


def time_finetuning(model, train, dev, epochs, target, turns):
    """Per-epoch seconds and dev accuracy; seconds of training until dev accuracy >= `target`.

    The step is compiled for every batch shape first (`compile_every_shape`, timed on its own).
    Both sides train on one iterator for all epochs (`repeated_epochs`), as notebook 04 does.
    """
    compile_seconds, shapes = compile_every_shape(model, train, turns)
    timer = _EpochTimer(dev, turns)
    train, steps_per_epoch = repeated_epochs(train)
    model.fit(train, epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=[turns, timer], verbose=0,
              shuffle=False)
    elapsed = compile_seconds + np.cumsum(timer.seconds)  # a user waits for the compilation too
    reached = [float(t) for t, accuracy in zip(elapsed, timer.accuracies) if accuracy >= target]
    return {"seconds_per_epoch": timer.seconds, "dev_accuracy": timer.accuracies,
            "seconds_to_target": reached[0] if reached else None,
            "compile_seconds": compile_seconds, "batch_shapes": shapes}


def pretraining_side(side, tokenizer, paragraphs, warmup_steps, steps, rounds, turns):
    """Time one side's pretraining: useful tokens per second, its step and its input pipeline.

    Each round trains a new model on the same batches; the fastest round counts. (Timed from
    the first step to the last, a side's rounds agreed within 8 % on 2 cores; timed as whole
    `fit` calls they differed by up to 1.5x, see `_StepSpan`.)
    """
    set_seed(0)
    prepare_seconds = None
    if side == "guide":
        data = guide_pretraining_data(tokenizer, paragraphs).repeat()
    else:
        start = turns.clock()
        packed = pack_texts(tokenizer, paragraphs)  # once, like notebook 02 (not per epoch)
        prepare_seconds = turns.clock() - start
        data = mlm_dataset(packed, make_mask_generator(tokenizer, MASK_RATE, PREDICTIONS), PRETRAIN_BATCH,
                           shuffle_seed=0).repeat()
    round_seconds = []
    for _ in range(rounds):
        set_seed(0)
        seconds, useful = time_pretraining(pretraining_model(tokenizer.vocabulary_size(), side), data, warmup_steps,
                                           steps, turns)
        round_seconds.append(seconds)
    seconds = min(round_seconds)
    pipeline = time_pipeline(data, warmup_steps + steps, turns) * steps / (warmup_steps + steps)
    # The guide re-tokenizes every step; its pipeline runs in parallel with training, so a
    # step costs at least the slower of the two. Ours tokenizes once per run.
    result = {"seconds": seconds, "seconds_per_round": round_seconds, "pipeline_seconds": pipeline,
              "useful_tokens": useful, "useful_tokens_per_second": useful / max(seconds, pipeline),
              "useful_share": useful / (steps * PRETRAIN_BATCH * SEQUENCE_LENGTH)}
    if prepare_seconds is not None:
        result["one_time_tokenize_seconds"] = prepare_seconds
    return result


def finetuning_side(side, tokenizer, train, dev, initial_weights, epochs, target, turns):
    """Fine-tune one side's classifier from `initial_weights` (a list of arrays) and time its epochs."""
    (sentences, labels), (dev_sentences, dev_labels) = train, dev
    vocabulary_size = tokenizer.vocabulary_size()
    if side == "guide":
        model = guide_classifier(vocabulary_size)
        train_data = guide_classification_data(tokenizer, sentences, labels, shuffle_seed=0)
        dev_data = guide_classification_data(tokenizer, dev_sentences, dev_labels)
        prepare_seconds = None
    else:
        model = build_classifier(build_encoder(vocabulary_size, SEQUENCE_LENGTH, **MODEL))
        start = turns.clock()
        train_tokens, dev_tokens = tokenize_texts(tokenizer, sentences), tokenize_texts(tokenizer, dev_sentences)
        prepare_seconds = turns.clock() - start
        train_data = classification_dataset(train_tokens, labels, FINETUNE_BATCH, shuffle_seed=0, bucketed=True)
        dev_data = classification_dataset(dev_tokens, dev_labels, FINETUNE_BATCH, bucketed=True)
    model.set_weights(initial_weights)  # both sides start from the same point
    # The guide updates with Keras's AdamW; ours with the series' lazy `FusedAdamW`.
    if side == "guide":
        optimizer = keras.optimizers.AdamW(FINETUNE_LEARNING_RATE)
    else:
        optimizer = finetuning_optimizer(FINETUNE_LEARNING_RATE)
    compile_classifier(model, optimizer)
    result = time_finetuning(model, train_data, dev_data, epochs, target, turns)
    if prepare_seconds is not None:
        result["one_time_tokenize_seconds"] = prepare_seconds
    return result


def one_side(side, args, tokenizer, paragraphs, train, dev, initial_weights, turns):
    """One side's pretraining and fine-tuning, on this process's Keras backend, in turns."""
    result = {"keras_backend": keras.backend.backend(),
              "pretraining": pretraining_side(side, tokenizer, paragraphs, args.warmup_steps, args.pretrain_steps,
                                              args.pretrain_rounds, turns),
              "finetuning": finetuning_side(side, tokenizer, train, dev, initial_weights, args.finetune_epochs,
                                            args.target_accuracy, turns)}
    turns.finish()
    result["turns"] = turns.turns
    return result


def start_ours(children, backend, args, initial_weights_path, out):
    """Start our side on `backend` in a child process (a process has one Keras backend); it writes `out`."""
    command = [sys.executable, __file__, "--ours-only", "--initial-weights", str(initial_weights_path),
               "--out", str(out), "--data-dir", args.data_dir, "--warmup-steps", str(args.warmup_steps),
               "--pretrain-steps", str(args.pretrain_steps), "--pretrain-rounds", str(args.pretrain_rounds),
               "--finetune-examples", str(args.finetune_examples), "--finetune-epochs", str(args.finetune_epochs),
               "--target-accuracy", str(args.target_accuracy), "--chunks", str(args.chunks)]
    children.start(command, env={**os.environ, "KERAS_BACKEND": backend})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="", help="real data folder; empty: the synthetic data")
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--pretrain-steps", type=int, default=40, help="timed pretraining steps per side")
    parser.add_argument("--pretrain-rounds", type=int, default=2, help="timed rounds per side; the fastest counts")
    parser.add_argument("--finetune-examples", type=int, default=0, help="SST-2 training sentences; 0: all")
    parser.add_argument("--finetune-epochs", type=int, default=3, help="the guide fine-tunes 3 epochs")
    parser.add_argument("--target-accuracy", type=float, default=0.75)
    parser.add_argument("--ours-backends", default="jax,tensorflow",
                        help="Keras backends to time our side on, comma-separated (the first is the headline)")
    parser.add_argument("--chunks", type=int, default=20,
                        help="turns per epoch or pretraining round: the sides alternate this often")
    parser.add_argument("--out", default="", help="write the results as JSON here")
    parser.add_argument("--ours-only", action="store_true", help=argparse.SUPPRESS)  # one backend's side, in a child
    parser.add_argument("--initial-weights", default="", help=argparse.SUPPRESS)
    parser.add_argument("--turn-fds", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    backends = [name.strip() for name in args.ours_backends.split(",") if name.strip()]
    unknown = sorted(set(backends) - set(BACKENDS))
    if args.pretrain_rounds < 1:
        parser.error(f"--pretrain-rounds must be at least 1 (got {args.pretrain_rounds})")
    if args.chunks < 1:
        parser.error(f"--chunks must be at least 1 (got {args.chunks})")
    if unknown or not backends:
        parser.error(f"--ours-backends: give one or more of {', '.join(BACKENDS)} (got {args.ours_backends!r})")

    if args.ours_only:  # a child, started by `Children.start`: loaded; wait for the first turn before any work
        hand_over = child_hand_over(args.turn_fds)
        hand_over()
        turns = Turns(hand_over, args.chunks)
    data_dir = resolve_data_dir(args.data_dir, "artifacts")
    tokenizer = make_tokenizer(find_vocabulary(data_dir), SEQUENCE_LENGTH)
    paragraphs = load_wikitext(data_dir, "valid")  # the validation split: the real files here lack train
    train = load_sst2(data_dir, "train")
    if args.finetune_examples:
        train = tuple(column[: args.finetune_examples] for column in train)
    dev = load_sst2(data_dir, "dev")

    if args.ours_only:
        weights = np.load(args.initial_weights)
        initial_weights = [weights[f"arr_{index}"] for index in range(len(weights.files))]
        ours = one_side("ours", args, tokenizer, paragraphs, train, dev, initial_weights, turns)
        Path(args.out).write_text(json.dumps(ours, default=float) + "\n")
        return ours

    if keras.backend.backend() != "tensorflow":
        raise SystemExit("The guide's side runs on TensorFlow (as the guide did): run this with "
                         "KERAS_BACKEND=tensorflow (the default); --ours-backends picks our side's backends.")
    results = {"machine": {**describe_machine(), "xla": use_xla(),
                           "python": sys.version.split()[0], "tensorflow": tf.__version__,
                           "keras": keras.__version__, "keras_hub": keras_hub.__version__},
               "data_dir": str(data_dir), "model": {**MODEL, "sequence_length": SEQUENCE_LENGTH,
                                                    "vocabulary_size": tokenizer.vocabulary_size()},
               "pretraining_blocks": PRETRAINING_BLOCKS, "ours_backends": backends, "chunks": args.chunks}
    set_seed(0)
    initial_weights = guide_classifier(tokenizer.vocabulary_size()).get_weights()
    children = Children()
    with tempfile.TemporaryDirectory() as folder:
        weights_path = Path(folder) / "initial_weights.npz"
        np.savez(weights_path, *initial_weights)
        outs = {backend: Path(folder) / f"ours-{backend}.json" for backend in backends}
        for backend, out in outs.items():
            start_ours(children, backend, args, weights_path, out)
        turns = Turns(children.run_turns, args.chunks)
        guide = one_side("guide", args, tokenizer, paragraphs, train, dev, initial_weights, turns)
        while children.live:  # the guide has finished; the others finish their work in turns
            children.run_turns()
        ours = {backend: json.loads(out.read_text()) for backend, out in outs.items()}
    guide_pretraining, guide_finetuning = guide["pretraining"], guide["finetuning"]
    results["turns"] = {"guide": guide["turns"], **{f"ours ({b})": side["turns"] for b, side in ours.items()}}

    results["pretraining"] = {"steps": args.pretrain_steps, "batch": PRETRAIN_BATCH, "guide": guide_pretraining,
                              "ours": {backend: side["pretraining"] for backend, side in ours.items()}}
    results["pretraining"]["useful_tokens_per_second_ratio"] = {
        backend: side["pretraining"]["useful_tokens_per_second"] / guide_pretraining["useful_tokens_per_second"]
        for backend, side in ours.items()}
    guide_epochs = guide_finetuning["seconds_per_epoch"]
    results["finetuning"] = {
        "train_sentences": len(train[0]), "epochs": args.finetune_epochs, "target_accuracy": args.target_accuracy,
        "guide": guide_finetuning, "ours": {backend: side["finetuning"] for backend, side in ours.items()},
        "seconds_per_epoch_ratio": {
            backend: float(np.mean(guide_epochs) / np.mean(side["finetuning"]["seconds_per_epoch"]))
            for backend, side in ours.items()},
        # Epoch by epoch: the spread.
        "each_epoch_seconds_ratio": {
            backend: [g / o for g, o in zip(guide_epochs, side["finetuning"]["seconds_per_epoch"])]
            for backend, side in ours.items()},
        # All epochs and the one-off compilation together: what a whole run of this length costs.
        "with_compile_seconds_ratio": {
            backend: float((np.sum(guide_epochs) + guide_finetuning["compile_seconds"])
                           / (np.sum(side["finetuning"]["seconds_per_epoch"]) + side["finetuning"]["compile_seconds"]))
            for backend, side in ours.items()},
    }
    print_table(results, args.target_accuracy)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2, default=float) + "\n")
        print("wrote", args.out)
    return results


def print_table(results, target):
    pre, fine = results["pretraining"], results["finetuning"]
    backends = list(pre["ours"])
    columns = ["guide (tensorflow)"] + [f"ours ({backend})" for backend in backends]
    print(f"{'':<40}" + "".join(f"{column:>20}" for column in columns))

    def row(label, part, value, fmt, ratios=None):
        """One line: `value(side)` for the guide and each backend of ours, with ratios where given."""
        cells = [format(value(side), fmt) for side in [part["guide"], *(part["ours"][b] for b in backends)]]
        if ratios:
            cells[1:] = [f"{cell} ({ratios[b]:.2f}x)" for cell, b in zip(cells[1:], backends)]
        print(f"{label:<40}" + "".join(f"{cell:>20}" for cell in cells))

    row("pretraining: useful tokens / s", pre, lambda side: side["useful_tokens_per_second"], ",.0f",
        pre["useful_tokens_per_second_ratio"])
    row("pretraining: seconds per step", pre, lambda side: side["seconds"] / pre["steps"], ".2f")
    row("pretraining: seconds per step, each round", pre,
        lambda side: " ".join(f"{seconds / pre['steps']:.2f}" for seconds in side["seconds_per_round"]), "")
    row("pretraining: useful share of tokens", pre, lambda side: side["useful_share"], ".1%")
    row("fine-tuning: seconds / epoch", fine, lambda side: np.mean(side["seconds_per_epoch"]), ".1f",
        fine["seconds_per_epoch_ratio"])
    row("fine-tuning: seconds, each epoch", fine,
        lambda side: " ".join(f"{seconds:.0f}" for seconds in side["seconds_per_epoch"]), "")
    row("fine-tuning: one-off compile s (shapes)", fine,
        lambda side: f"{side['compile_seconds']:.1f} ({side['batch_shapes']})", "")
    row("fine-tuning: all epochs + compile, s", fine,
        lambda side: np.sum(side["seconds_per_epoch"]) + side["compile_seconds"], ".0f",
        fine["with_compile_seconds_ratio"])
    print(f"{'fine-tuning: ratio, each epoch':<40}{'':>20}" + "".join(
        f"{' '.join(f'{ratio:.2f}' for ratio in fine['each_epoch_seconds_ratio'][b]):>20}" for b in backends))
    row("fine-tuning: dev accuracy per epoch", fine,
        lambda side: " ".join(f"{a:.3f}" for a in side["dev_accuracy"]), "")
    row(f"fine-tuning: seconds to dev {target}", fine,
        lambda side: "not reached" if side["seconds_to_target"] is None else f"{side['seconds_to_target']:.1f}", "")


if __name__ == "__main__":
    main()

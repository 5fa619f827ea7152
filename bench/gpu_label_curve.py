"""Which pretraining pays where labels are scarce? The label-budget curve on a GPU, many arms.

Issue 8 asks the `cpu` profile's pretrained encoder to beat training from scratch by 3 points
of SST-2 dev accuracy at 4,000 labels or fewer. A GPU trains in seconds what takes the CPU 25
minutes, so this draws notebook 04's curve for several pretrainings at once: each `--arm` names
how its encoder starts (`random`, or `cooccurrence`: the token embedding from
`nbhelpers.word_vectors`) and how many MLM steps of the profile's recipe (`params/cpu.yaml`,
unchanged but for the step count and batch size) follow; a step count measured on 2 CPU cores
says what an arm would cost there. Every arm, the randomly initialised "no pretraining" control
among them, is then fine-tuned at each label budget and seed with notebook 04's protocol:
class-balanced samples and validation fifths drawn as there (`nbhelpers.data.sample_labelled`,
`nbhelpers.label_budget.split_validation`, seeds from the profile's `SEED` on), AdamW at
`CURVE_LEARNING_RATE`, enough epochs for `CURVE_MIN_STEPS` steps, the epoch with the best
validation accuracy kept (patience 3), dev scored once at the end. The bag-of-words control
runs on the same samples in `prepare`.

Two steps, because the GPU machine has no TensorFlow and the tokenizer needs it:

    # here: tokenize SST-2 with notebook 02's vocabulary, draw the samples, train the bag of
    # words on each, count the co-occurrence word vectors (TensorFlow)
    .venv/bin/python bench/gpu_label_curve.py prepare --mlm-data artifacts/cpu/02_mlm_data \\
        --data-dir ../shared/data --seeds 5 --out .gpudata/label_curve.npz
    # on the GPU (JAX, no TensorFlow): pretrain each arm, fine-tune, write the curve
    KERAS_BACKEND=jax python bench/gpu_label_curve.py run --mlm-data artifacts/cpu/02_mlm_data \\
        --prepared .gpudata/label_curve.npz --arm "MLM 1x" random 3510 64 \\
        --arm "word vectors + MLM" cooccurrence 3475 64 --out bench/results/gpu-label-curve.json

The runs of 2026-11-26 on an H200 and their figures: docs/results/gpu-h200.md.

Fine-tuning runs as one compiled step shared by every run (the arms differ only in their
initial weights), on padded 64-token batches; the last batch of an epoch is filled up from the
epoch's start so every batch has the same shape.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402

from nbhelpers.params import read_yaml  # noqa: E402

CONTROL = "transformer, no pretraining"
STARTS = ("random", "cooccurrence")


def prepare(args):
    """One .npz file: token ids of SST-2 (train, dev), the samples of every budget and seed, the
    bag of words' dev accuracy on each, and the co-occurrence word vectors of the pretraining corpus."""
    from nbhelpers.data import load_sst2, resolve_data_dir, sample_labelled
    from nbhelpers.label_budget import (
        CurveSettings, LabelledSplits, epochs_for, fine_tune_bag_of_words, split_validation,
    )
    from nbhelpers.tokenization import SPECIAL_TOKENS, make_tokenizer, tokenize_texts
    from nbhelpers.word_vectors import cooccurrence_vectors

    params = read_yaml(Path(args.params).read_text())
    config = json.loads((Path(args.mlm_data) / "config.json").read_text())
    tokenizer = make_tokenizer(Path(args.mlm_data) / "vocab.txt", config["sequence_length"])
    data_dir = resolve_data_dir(args.data_dir, "artifacts")
    arrays, texts = {}, {}
    for split in ("train", "dev"):
        texts[split] = load_sst2(data_dir, split)
        arrays[f"{split}_tokens"] = tokenize_texts(tokenizer, texts[split][0]).astype("int16")
        arrays[f"{split}_labels"] = np.asarray(texts[split][1], "int8")
    labelled = LabelledSplits(*texts["train"], *texts["dev"])
    settings = CurveSettings(batch_size=params["FINETUNE_BATCH_SIZE"], learning_rate=params["CURVE_LEARNING_RATE"],
                             baseline_max_tokens=params["BASELINE_MAX_TOKENS"], min_steps=params["CURVE_MIN_STEPS"])
    budgets = [int(b) for b in str(params["CURVE_BUDGETS"]).split(",")]
    runs, bag_of_words = [], []
    first_seed = params["SEED"] if args.first_seed is None else args.first_seed
    for budget in budgets:
        for seed in range(first_seed, first_seed + (args.seeds or params["CURVE_SEEDS"])):
            labels = arrays["train_labels"].tolist()
            sample = sample_labelled(np.arange(len(labels)), labels, budget, seed)[0]
            train, validation = split_validation(sample, labels, seed)
            arrays[f"train_{budget}_{seed}"] = np.asarray(train, "int32")
            arrays[f"validation_{budget}_{seed}"] = np.asarray(validation, "int32")
            runs.append([budget, seed, epochs_for(len(train), settings)])
            bag_of_words.append(fine_tune_bag_of_words(labelled, train, validation, seed, settings)[0])
            print(f"{budget:>6} labels  seed {seed}  bag of words dev {bag_of_words[-1]:.3f}", flush=True)
    arrays["runs"] = np.asarray(runs, "int32")
    arrays["bag_of_words_accuracy"] = np.asarray(bag_of_words, "float64")
    start = time.perf_counter()  # as notebook 03 counts them
    arrays["cooccurrence_vectors"] = cooccurrence_vectors(
        np.load(Path(args.mlm_data) / "train_tokens.npy"), tokenizer.vocabulary_size(), params["MODEL_DIM"],
        ignore_ids=[tokenizer.token_to_id(token) for token in SPECIAL_TOKENS], seed=params["SEED"])
    print(f"co-occurrence vectors: {time.perf_counter() - start:.1f} s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out}: {len(runs)} runs, budgets {budgets}")


def pretrain(mlm_data, params, steps, batch, seed, start_vectors=None):
    """The cpu profile's recipe for `steps` steps of `batch` sequences (bf16, logits head), its token
    embedding started from `start_vectors` if given; (encoder weights, val MLM accuracy)."""
    import jax
    import keras

    from benchlib import shuffled_passes
    from gpu_step import initial_state, jitted_train_step, self_masking_mlm
    from nbhelpers.models import build_encoder
    from nbhelpers.schedules import learning_rate
    from nbhelpers.training import set_seed
    from nbhelpers.word_vectors import start_token_embedding

    config = json.loads((Path(mlm_data) / "config.json").read_text())
    train, valid = (np.load(Path(mlm_data) / f"{split}_tokens.npy") for split in ("train", "valid"))
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    set_seed(seed)
    encoder = build_encoder(
        config["vocabulary_size"], config["sequence_length"], num_layers=params["NUM_LAYERS"],
        model_dim=params["MODEL_DIM"], num_heads=params["NUM_HEADS"], intermediate_dim=params["INTERMEDIATE_DIM"],
        dropout=params["DROPOUT"], normalize_first=params["NORMALIZE_FIRST"])
    if start_vectors is not None:
        start_token_embedding(encoder, start_vectors)
    model = self_masking_mlm(encoder, config["predictions_per_sequence"], "logits", config["mask_rate"], seed)
    model(train[:2])
    seconds, loss = 0.0, float("nan")
    if steps:
        optimizer = keras.optimizers.AdamW(
            learning_rate(params["PRETRAIN_LEARNING_RATE"], params["PRETRAIN_SCHEDULE"], steps))
        state = initial_state(model, optimizer)
        step = jitted_train_step(model, optimizer)
        tokens = jax.device_put(train)
        start = time.perf_counter()
        for rows in shuffled_passes(len(train), steps * batch, seed).reshape(steps, batch):
            loss, state = step(state, tokens[rows])
        loss = float(loss)
        seconds = time.perf_counter() - start
        for variable, value in zip(model.trainable_variables, state[0]):
            variable.assign(value)
        for variable, value in zip(model.non_trainable_variables, state[1]):
            variable.assign(value)
    outputs = model(valid, training=False)
    hits = np.asarray(keras.ops.argmax(outputs["predictions"], axis=-1)) == np.asarray(outputs["mask_ids"])
    weights = np.asarray(outputs["mask_weights"])
    accuracy = float((hits * weights).sum() / weights.sum())
    return encoder.get_weights(), {"steps": steps, "batch": batch, "seconds": seconds, "val_mlm_accuracy": accuracy,
                                   "last_loss": loss}


def fine_tuning_runs(mlm_data, params, prepared, encoder_weights, log=print):
    """Dev accuracy per arm, budget and seed; one compiled step for all runs."""
    import jax
    import keras

    from gpu_step import initial_state, jitted_train_step
    from nbhelpers.models import build_classifier, build_encoder
    from nbhelpers.training import set_seed

    config = json.loads((Path(mlm_data) / "config.json").read_text())
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("float32")  # as notebook 04 on a CPU

    def new_classifier(seed, weights):
        set_seed(seed)
        encoder = build_encoder(
            config["vocabulary_size"], config["sequence_length"], num_layers=params["NUM_LAYERS"],
            model_dim=params["MODEL_DIM"], num_heads=params["NUM_HEADS"],
            intermediate_dim=params["INTERMEDIATE_DIM"], dropout=params["DROPOUT"],
            normalize_first=params["NORMALIZE_FIRST"])
        if weights is not None:
            encoder.set_weights(weights)
        return build_classifier(encoder)

    reference = new_classifier(0, None)  # the structure every run's weights are fed through
    optimizer = keras.optimizers.AdamW(params["CURVE_LEARNING_RATE"])
    fresh_optimizer = initial_state(reference, optimizer)[2]
    # Not donated: the best epoch's state is kept while training goes on.
    train_step = jitted_train_step(
        reference, optimizer, loss=lambda predicted, y: keras.ops.mean(keras.losses.binary_crossentropy(y[:, None], predicted)),
        donate=False)

    @jax.jit
    def predict(trainable, non_trainable, x):
        return reference.stateless_call(trainable, non_trainable, x, training=False)[0][:, 0]

    def accuracy(state, tokens, labels):
        return float(np.mean((np.asarray(predict(state[0], state[1], tokens)) > 0.5) == (labels > 0.5)))

    train_tokens = prepared["train_tokens"].astype("int32")
    train_labels = prepared["train_labels"].astype("float32")
    dev_tokens, dev_labels = prepared["dev_tokens"].astype("int32"), prepared["dev_labels"].astype("float32")
    batch = params["FINETUNE_BATCH_SIZE"]
    result = {"accuracy": {}, "best_epoch": {}, "validation_accuracy": {}}
    for budget, seed, epochs in prepared["runs"].tolist():
        train, validation = prepared[f"train_{budget}_{seed}"], prepared[f"validation_{budget}_{seed}"]
        for arm, weights in encoder_weights.items():
            classifier = new_classifier(seed, weights)
            state = ([jax.numpy.asarray(v.value) for v in classifier.trainable_variables],
                     [jax.numpy.asarray(v.value) for v in classifier.non_trainable_variables],
                     fresh_optimizer)
            rng = np.random.default_rng(seed)
            best, best_accuracy, best_epoch, waited = state, -1.0, 0, 0
            for epoch in range(1, epochs + 1):
                order = rng.permutation(train)
                order = np.concatenate([order, order[: (-len(order)) % batch]])  # fill the last batch
                for rows in order.reshape(-1, batch):
                    _, state = train_step(state, train_tokens[rows], train_labels[rows])
                validation_accuracy = accuracy(state, train_tokens[validation], train_labels[validation])
                if validation_accuracy > best_accuracy:
                    best, best_accuracy, best_epoch, waited = state, validation_accuracy, epoch, 0
                else:
                    waited += 1
                    if waited >= 3:  # notebook 04's patience
                        break
            dev = accuracy(best, dev_tokens, dev_labels)
            for key, value in (("accuracy", dev), ("best_epoch", best_epoch), ("validation_accuracy", best_accuracy)):
                result[key].setdefault(arm, {}).setdefault(str(budget), []).append(value)
            log(f"{budget:>6} labels  seed {seed}  {arm:<32} dev {dev:.3f}  (best epoch {best_epoch})")
    return result


def run(args):
    import jax

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # gpu_step, beside this file
    params = read_yaml(Path(args.params).read_text())
    prepared = dict(np.load(args.prepared))
    arms = args.arm or [[CONTROL, "random", "0", "0"]]
    results = {"device": jax.devices()[0].device_kind, "jax": jax.__version__, "params": args.params,
               "arms": arms, "pretraining": {}}

    def save():
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=2) + "\n")

    encoder_weights = {}
    for name, start, steps, batch in arms:
        if start == "random" and int(steps) == 0:
            encoder_weights[name] = None  # a new random start per seed, as notebook 04's control
            continue
        vectors = prepared["cooccurrence_vectors"] if start == "cooccurrence" else None
        encoder_weights[name], results["pretraining"][name] = pretrain(
            args.mlm_data, params, int(steps), int(batch), params["SEED"], vectors)
        print(name, json.dumps(results["pretraining"][name]), flush=True)
        save()
    curve = fine_tuning_runs(args.mlm_data, params, prepared, encoder_weights,
                             log=lambda line: print(line, flush=True))
    bag_of_words = {}
    for (budget, _, _), accuracy in zip(prepared["runs"].tolist(), prepared["bag_of_words_accuracy"].tolist()):
        bag_of_words.setdefault(str(budget), []).append(accuracy)
    curve["accuracy"] = {"bag of words": bag_of_words, **curve["accuracy"]}
    results["curve"] = curve
    for budget in bag_of_words:
        means = {arm: float(np.mean(per_budget[budget])) for arm, per_budget in curve["accuracy"].items()}
        print(f"{budget:>6} labels: " + "  ".join(f"{arm} {mean:.3f}" for arm, mean in means.items()))
    save()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["prepare", "run"])
    parser.add_argument("--mlm-data", required=True, help="notebook 02's artifact folder")
    parser.add_argument("--params", default="params/cpu.yaml", help="the profile whose recipe and curve settings to use")
    parser.add_argument("--data-dir", default="", help="prepare: the folder holding sst2/")
    parser.add_argument("--prepared", default="", help="run: the file that `prepare` wrote")
    parser.add_argument("--first-seed", type=int, default=None,
                        help="prepare: the curve's first seed (default: the profile's SEED, as notebook 04)")
    parser.add_argument("--seeds", type=int, default=0, help="prepare: seeds per budget (default: the profile's CURVE_SEEDS)")
    parser.add_argument("--arm", nargs=4, action="append", metavar=("NAME", "START", "MLM_STEPS", "BATCH"),
                        help=f"run: an encoder to fine-tune: its start ({' or '.join(STARTS)}), then MLM steps of "
                             f"BATCH sequences (0: none); repeat for more arms (default: one, {CONTROL!r}, "
                             "random 0 0)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    for name, start, steps, batch in args.arm or []:
        if start not in STARTS or not (steps.isdigit() and batch.isdigit()) or (int(steps) > 0) != (int(batch) > 0):
            parser.error(f"--arm {name!r} {start} {steps} {batch}: give NAME, a start ({' or '.join(STARTS)}) "
                         "and two whole numbers, MLM steps and batch size, both 0 for no MLM "
                         "(e.g. --arm \"MLM 1x\" random 3510 64)")
    (prepare if args.mode == "prepare" else run)(args)


if __name__ == "__main__":
    main()

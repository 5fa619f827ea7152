"""Replaced-token detection (ELECTRA) against masked-language modelling, by the label-budget curve.

Issue 8's lever: an encoder that learns more per CPU minute. This pretrains the `cpu` profile's
encoder (the same 3 x 128 blocks, vocabulary, packed 64-token sequences, learning-rate schedule
and wall-clock budget, `params/cpu.yaml`) with `benchlib.ReplacedTokenDetection` instead of
notebook 03's MLM: a one-layer generator sharing the encoder's embedding fills the masked
positions, and the encoder learns to spot the replaced tokens at every position. Then it draws
notebook 04's label-budget curve (`nbhelpers.label_budget`, the profile's budgets and seeds, so
the same samples as notebook 04) for the arms: bag of words, no pretraining, the MLM encoder of
a `cpu` run (`--mlm-encoder`, notebook 03's `encoder.keras`) and the new encoder.

    .venv/bin/python bench/replaced_token_curve.py --mlm-data artifacts/cpu/02_mlm_data \\
        --mlm-encoder artifacts/cpu/03_encoder/encoder.keras --data-dir ../shared/data \\
        --out bench/results/replaced-token-curve-cpu-2-cores.json

Run it alone on an idle machine: the budget becomes a step count from a timed calibration.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from nbhelpers.data import load_sst2, resolve_data_dir
from nbhelpers.label_budget import ARMS, CurveSettings, LabelledSplits, TransformerArm, label_budget_curve, summarize
from nbhelpers.models import EMBEDDING_LAYER, build_classifier, build_encoder
from nbhelpers.params import read_yaml
from nbhelpers.schedules import learning_rate, seconds_per_step, steps_for_minutes
from nbhelpers.tokenization import MASK, NEVER_MASKED, make_tokenizer, tokenize_texts
from nbhelpers.training import WallClock, set_seed

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchlib.py, beside this script: bench/ is no package
from benchlib import ReplacedTokenDetection, rewire_encoder, shuffled_passes  # noqa: E402

EVALUATIONS = 10


def new_encoder(params, config, num_layers=None, intermediate_dim=None, embedding=None):
    """The profile's encoder (or, with the overrides, the generator's), newly initialised."""
    encoder = build_encoder(
        config["vocabulary_size"], config["sequence_length"], num_layers=num_layers or params["NUM_LAYERS"],
        model_dim=params["MODEL_DIM"], num_heads=params["NUM_HEADS"],
        intermediate_dim=intermediate_dim or params["INTERMEDIATE_DIM"], dropout=params["DROPOUT"],
        normalize_first=params["NORMALIZE_FIRST"])
    return encoder if embedding is None else rewire_encoder(encoder, embedding=embedding)


def build_models(params, config, generator_layers, generator_intermediate_dim, discriminator_weight, tokenizer):
    """The encoder and the replaced-token-detection model that pretrains it."""
    encoder = new_encoder(params, config)
    generator = new_encoder(params, config, generator_layers, generator_intermediate_dim,
                            embedding=encoder.get_layer(EMBEDDING_LAYER))
    special = [tokenizer.token_to_id(token) for token in NEVER_MASKED]
    model = ReplacedTokenDetection(encoder, generator, config["predictions_per_sequence"],
                                   mask_token_id=tokenizer.token_to_id(MASK), unselectable_ids=special,
                                   mask_rate=config["mask_rate"], discriminator_weight=discriminator_weight,
                                   seed=params["SEED"])
    return encoder, model


def pretrain(model, train, valid, params, minutes, batch_size):
    """Train for `minutes` of wall time (as a step count), validated EVALUATIONS times; the history."""
    model(train[:1])  # builds every layer, so that the calibration puts every weight back
    batches = tf.data.Dataset.from_tensor_slices(train).batch(batch_size).map(lambda ids: (ids,))  # inputs only
    step_seconds = seconds_per_step(model, batches, loss=None)
    steps = steps_for_minutes(minutes, step_seconds, EVALUATIONS, len(valid) // batch_size)
    steps_per_epoch = steps // EVALUATIONS
    print(f"{step_seconds * 1000:.0f} ms per step: {steps:,} steps fit in {minutes} minutes", flush=True)
    model.compile(optimizer=keras.optimizers.AdamW(
        learning_rate(params["PRETRAIN_LEARNING_RATE"], params["PRETRAIN_SCHEDULE"], steps_per_epoch * EVALUATIONS)))
    order = shuffled_passes(len(train), steps_per_epoch * EVALUATIONS * batch_size, params["SEED"])
    history = model.fit(train[order], batch_size=batch_size, epochs=EVALUATIONS, steps_per_epoch=steps_per_epoch,
                        validation_data=(valid,), callbacks=[WallClock()], verbose=2, shuffle=False).history
    return {"step_seconds": step_seconds, "steps": int(model.optimizer.iterations.numpy()),
            "history": {key: [float(v) for v in values] for key, values in history.items()}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mlm-data", required=True, help="notebook 02's artifact folder (token arrays, vocab)")
    parser.add_argument("--mlm-encoder", default="", help="notebook 03's encoder.keras for the MLM arm; empty: no such arm")
    parser.add_argument("--params", default="params/cpu.yaml")
    parser.add_argument("--data-dir", default="", help="the folder holding sst2/; empty: the synthetic data")
    parser.add_argument("--minutes", type=float, default=None, help="pretraining budget; default: PRETRAIN_MINUTES")
    parser.add_argument("--generator-layers", type=int, default=1)
    parser.add_argument("--generator-intermediate-dim", type=int, default=256)
    parser.add_argument("--discriminator-weight", type=float, default=50.0)
    parser.add_argument("--budgets", default="", help="label budgets, e.g. 250,1000; default: CURVE_BUDGETS")
    parser.add_argument("--seeds", type=int, default=None, help="default: CURVE_SEEDS")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    params = read_yaml(Path(args.params).read_text())
    mlm_data = Path(args.mlm_data)
    config = json.loads((mlm_data / "config.json").read_text())
    tokenizer = make_tokenizer(mlm_data / "vocab.txt", config["sequence_length"])
    train, valid = (np.load(mlm_data / f"{split}_tokens.npy") for split in ("train", "valid"))
    minutes = params["PRETRAIN_MINUTES"] if args.minutes is None else args.minutes
    batch_size = params["PRETRAIN_BATCH_SIZE"]
    results = {"params": args.params, "mlm_data": str(mlm_data), "minutes": minutes,
               "generator_layers": args.generator_layers,
               "generator_intermediate_dim": args.generator_intermediate_dim,
               "discriminator_weight": args.discriminator_weight}

    set_seed(params["SEED"])
    encoder, model = build_models(params, config, args.generator_layers, args.generator_intermediate_dim,
                                  args.discriminator_weight, tokenizer)
    results["encoder_parameters"] = encoder.count_params()
    results["pretraining"] = pretrain(model, train, valid, params, minutes, batch_size)
    saved = Path(tempfile.mkdtemp()) / "encoder.keras"
    encoder.save(saved)

    data_dir = resolve_data_dir(args.data_dir, "artifacts")
    pool_sentences, pool_labels = load_sst2(data_dir, "train")
    dev_sentences, dev_labels = load_sst2(data_dir, "dev")
    pool_tokens, dev_tokens = tokenize_texts(tokenizer, pool_sentences), tokenize_texts(tokenizer, dev_sentences)
    labelled = LabelledSplits(pool_sentences, pool_labels, dev_sentences, dev_labels)
    settings = CurveSettings(batch_size=params["FINETUNE_BATCH_SIZE"], learning_rate=params["CURVE_LEARNING_RATE"],
                             baseline_max_tokens=params["BASELINE_MAX_TOKENS"], min_steps=params["CURVE_MIN_STEPS"],
                             bucketed=params["BUCKETED"])
    arms = {ARMS[1]: TransformerArm(lambda: build_classifier(new_encoder(params, config)), pool_tokens, dev_tokens)}
    if args.mlm_encoder:
        arms["transformer, MLM-pretrained"] = TransformerArm(
            lambda: build_classifier(keras.models.load_model(args.mlm_encoder)), pool_tokens, dev_tokens)
    arms["transformer, RTD-pretrained"] = TransformerArm(
        lambda: build_classifier(keras.models.load_model(saved)), pool_tokens, dev_tokens)
    budgets = [int(b) for b in (args.budgets or str(params["CURVE_BUDGETS"])).split(",")]
    seeds = range(params["SEED"], params["SEED"] + (args.seeds or params["CURVE_SEEDS"]))
    results["curve"] = label_budget_curve(labelled, arms, budgets, seeds, settings)
    print(f"{'labels':>8}" + "".join(f"{arm.split(', ')[-1]:>22}" for arm in results["curve"]["accuracy"]))
    summary = summarize(results["curve"]["accuracy"])
    for budget in map(str, budgets):
        print(f"{budget:>8}" + "".join(f"{summary[arm][budget][0]:>15.3f} ± {summary[arm][budget][1]:.3f}"
                                        for arm in summary))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print("wrote", args.out)
    return results


if __name__ == "__main__":
    main()

"""Which fine-tuning recipe holds up outside films? SST-2 dev and product reviews, per recipe and seed.

Issue 27: the `cpu` profile's exported model scores 0.649 on Hu & Liu's product-review sentences,
below notebook 01's bag of words (0.676). This fine-tunes notebook 03's encoder on all SST-2
training labels as notebook 04 does (its tokenizer, `build_classifier`, `compile_classifier`,
`fit_logged`, the profile's `FINETUNE_*` settings), once per named recipe
(`nbhelpers.finetune_recipes`) and seed, and scores each classifier on the SST-2 dev set and,
wrapped with its tokenizer as notebook 05 exports it, zero-shot on every out-of-domain set of the
data folder (`nbhelpers.out_of_domain`). The product reviews only pick among the named recipes:
nothing is trained or tuned on them.

    python bench/out_of_domain_recipes.py --artifacts artifacts-cpu --recipes plain lp_ft slow_embedding \\
        --seeds 42 43 44 --out bench/results/out-of-domain-recipes

With `--prompt "it was [MASK] ."` every recipe fine-tunes as a cloze instead of a pooled head:
the pretrained MLM head reads the label from the prompt's `[MASK]` (`nbhelpers.prompting`, as
notebook 04's label-budget curve does), on all labels. `--set FINETUNE_EPOCHS=3` (any of the
profile's `FINETUNE_*` settings) changes one setting for every fit. With `--soup` (two or more
seeds, one process), every fit's head starts from the first seed's draw, the seed orders only the
data, and the mean of the fits' weights is scored too: a uniform model soup ("plain+soup"). With
`--with-bag-of-words`, every scored model is also scored as notebook 05 exports it with
`WITH_BAG_OF_WORDS`: the mean of its probabilities and notebook 01's bag of words' ("plain+bag_of_words").

A recipe without weight averaging is also scored averaged, out of the same fit: the averaging
only watches the training path, so "plain" gives "averaged" too, and "lp_ft" "lp_ft+averaged".
A recipe with `lp_ft` also scores the linear probe alone ("linear_probe": the pretrained encoder,
the fitted head) and the weights halfway between it and the fine-tuned ones ("lp_ft+wise",
WiSE-FT's interpolation at 0.5; Wortsman et al., CVPR 2022).

`--artifacts` is a folder where notebooks 01-03 ran; the data folder is the one notebook 01
recorded there (or `--data-dir`). The results (`<out>.json`, one record a run, rewritten after
each run so that an interrupted comparison keeps what it finished, and `<out>.md`, mean ± sd per
recipe) go to `--out`. Seeds run in separate processes are pooled afterwards:

    python bench/out_of_domain_recipes.py --combine a.json b.json --out bench/results/out-of-domain-recipes
"""

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import nbhelpers  # noqa: F401  (first: it keeps TensorFlow's start-up logs quiet)
import keras

from nbhelpers.artifacts import data_folder, read_json, require_artifact
from nbhelpers.baseline import load_bag_of_words
from nbhelpers.cli import UserError, run_command
from nbhelpers.data import OUT_OF_DOMAIN_FOLDER, load_out_of_domain_sets, load_sst2
from nbhelpers.export import average_text_models, build_text_model, predict_texts
from nbhelpers.finetune_recipes import WeightAveraging, parse_recipe, prepare_recipe
from nbhelpers.models import build_classifier, pretrainer_from_config
from nbhelpers.out_of_domain import score_out_of_domain
from nbhelpers.prompting import Prompt, build_prompt_classifier
from nbhelpers.params import check_parameter
from nbhelpers.run import load_profile, parse_value
from nbhelpers.batches import classification_dataset
from nbhelpers.tokenization import make_tokenizer, tokenize_texts
from nbhelpers.training import (
    binary_accuracy, compile_classifier, finetuning_optimizer, fit_logged, repeated_epochs, set_precision, set_seed,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchlib.py, beside this script: bench/ is no package
from benchlib import describe_machine  # noqa: E402


def fine_tune_and_score(source, recipe, seed, data, settings, log=print, prompt=None, kept=None, head_seed=None,
                        bag_of_words=None):
    """One fit: notebook 04's all-labels fine-tuning under `recipe` with `seed`.

    Returns a list of records: the recipe's, and for a recipe without "averaged" also its
    averaged variant, read out of the same fit ("plain" -> "averaged", "lp_ft" -> "lp_ft+averaged");
    with "lp_ft", the probe alone ("linear_probe") and the halfway weights ("lp_ft+wise") too.
    With a `Prompt`, the classifier is the cloze of `build_prompt_classifier` (the token arrays
    in `data` already prompted). With `kept` (`SoupMembers`), each scored model's weights and the
    classifier are kept there, for `score_soups`. With `head_seed`, the head starts from that
    seed's draw and `seed` only orders the data (a soup's members). With `bag_of_words`
    (`BagOfWords`), each scored model is scored averaged with it too ("<name>+bag_of_words").
    """
    tokenizer, train_tokens, train_labels, dev_tokens, dev_labels, sets = data
    set_seed(seed if head_seed is None else head_seed)
    batch_size, epochs, rate = settings["FINETUNE_BATCH_SIZE"], settings["FINETUNE_EPOCHS"], settings["FINETUNE_LEARNING_RATE"]
    bucketed = settings["BUCKETED"]
    train_ds = classification_dataset(train_tokens, train_labels, batch_size, shuffle_seed=seed, bucketed=bucketed)
    repeated_train_ds, steps_per_epoch = repeated_epochs(train_ds)
    dev_ds = classification_dataset(dev_tokens, dev_labels, batch_size, bucketed=bucketed)
    start = time.perf_counter()
    if prompt is None:
        classifier = build_classifier(keras.models.load_model(source / "encoder.keras"))
    else:
        config = read_json(source / "config.json")
        pretrainer = pretrainer_from_config(config, tokenizer.vocabulary_size(), source / "mlm.weights.h5", activation=None)
        classifier = build_prompt_classifier(pretrainer.get_layer("encoder"), pretrainer.get_layer("mlm_head"), prompt)
    set_seed(seed)
    callbacks = prepare_recipe(classifier, recipe, train_ds, epochs * steps_per_epoch, seed=seed, log=log)

    def score(name, seconds, read_out_of=None):  # the classifier's weights as they are now, on every set
        if kept is not None:
            kept.weights.setdefault(name, []).append([keras.ops.convert_to_numpy(v).copy() for v in classifier.weights])
            kept.classifier = classifier
        text_model = _text_model(classifier, tokenizer, prompt)
        scored = [_scored(classifier, text_model, name, seed, dev_ds, sets, seconds, read_out_of)]
        if bag_of_words is not None:
            scored.append(bag_of_words.scored(text_model, name, seed, sets, seconds))
        return scored

    runs, probe = [], None
    if "lp_ft" in parse_recipe(recipe):  # the linear probe alone: the pretrained encoder untouched, the fitted head
        probe = _weights(classifier)
        runs += score("linear_probe", time.perf_counter() - start, read_out_of=recipe)
    # A recipe without averaging is also read out averaged: the averaging only watches the same
    # training path (`WeightAveraging(assign=False)`), so one fit gives both recipes' models.
    watcher = None if "averaged" in parse_recipe(recipe) else WeightAveraging.for_steps(epochs * steps_per_epoch, assign=False)
    classifier = compile_classifier(classifier, finetuning_optimizer(rate))
    with tempfile.TemporaryDirectory() as log_dir:
        fit_logged(classifier, repeated_train_ds, dev_ds, epochs=epochs, log_dir=log_dir, steps_per_epoch=steps_per_epoch,
                   callbacks=callbacks + ([watcher] if watcher else []), verbose=0, progress_label=f"{recipe}, seed {seed}")
    seconds = time.perf_counter() - start
    runs += score(recipe, seconds)
    if probe is not None:  # WiSE-FT's interpolation (Wortsman et al., CVPR 2022), halfway back to the probe
        tuned = _weights(classifier)
        _assign(classifier, [(a + b) / 2 for a, b in zip(probe, tuned)])
        runs += score(f"{recipe}+wise", seconds, read_out_of=recipe)
        _assign(classifier, tuned)
    if watcher:
        watcher.apply()
        averaged = "averaged" if recipe == "plain" else f"{recipe}+averaged"
        runs += score(averaged, seconds, read_out_of=recipe)
    return runs


@dataclass
class BagOfWords:
    """Notebook 01's raw-text bag of words, and the SST-2 dev set to score a mean with it on."""

    model: keras.Model
    dev_sentences: list
    dev_labels: list

    def scored(self, text_model, name, seed, sets, seconds):
        """The record of `text_model` averaged with the bag of words, as notebook 05 exports it."""
        both = average_text_models([text_model, self.model])
        dev_accuracy = float(np.mean((predict_texts(both, self.dev_sentences) > 0.5) == np.asarray(self.dev_labels, bool)))
        scores = score_out_of_domain({"model": both}, sets)
        return {"recipe": f"{name}+bag_of_words", "seed": seed, "sst2_dev": dev_accuracy, **_out_of_domain_fields(scores),
                "seconds": seconds, "read_out_of_the_fit_of": name}


@dataclass
class SoupMembers:
    """One recipe's fits for a soup: each scored model's weights, fit by fit, and a classifier to hold them."""

    weights: dict = field(default_factory=dict)  # {"plain": [weights of seed 42's fit, ...], "averaged": [...]}
    classifier: keras.Model = None


def score_soups(kept, seeds, data, settings, prompt=None):
    """A uniform model soup per scored model: the mean of its weights over the seeds' fits.

    Every fit starts from the same pretrained encoder, so their weights stay close enough to
    average into one model of the same size (Wortsman et al., ICML 2022, "Model soups").
    Returns one record a soup, recipe "<name>+soup", seed the list of seeds it averages.
    """
    classifier = kept.classifier
    tokenizer, _, _, dev_tokens, dev_labels, sets = data
    dev_ds = classification_dataset(dev_tokens, dev_labels, settings["FINETUNE_BATCH_SIZE"], bucketed=settings["BUCKETED"])
    runs = []
    for name, weight_sets in kept.weights.items():
        if len(weight_sets) < 2:
            continue
        for variable, *values in zip(classifier.weights, *weight_sets):
            variable.assign(np.mean(values, axis=0).astype(values[0].dtype))
        runs.append(_scored(classifier, _text_model(classifier, tokenizer, prompt), f"{name}+soup", list(seeds),
                            dev_ds, sets, 0.0, read_out_of=name))
    return runs


def _text_model(classifier, tokenizer, prompt):
    """The classifier on raw strings, as notebook 05 exports it (or through the prompt)."""
    return build_text_model(tokenizer, classifier) if prompt is None else _PromptedTexts(classifier, tokenizer, prompt)


def _weights(model):
    return [keras.ops.convert_to_numpy(v).copy() for v in model.trainable_variables]


def _assign(model, values):
    for variable, value in zip(model.trainable_variables, values):
        variable.assign(value)


class _PromptedTexts:
    """Raw strings to P(positive) through a prompt: the bench's stand-in for an exported cloze model."""

    def __init__(self, classifier, tokenizer, prompt):
        self.classifier, self.tokenizer, self.prompt = classifier, tokenizer, prompt

    def __call__(self, texts, training=False):
        sentences = [text.decode("utf-8") for text in texts.numpy()]
        return self.classifier.predict(self.prompt.apply(tokenize_texts(self.tokenizer, sentences)), verbose=0)


def _scored(classifier, text_model, recipe, seed, dev_ds, sets, seconds, read_out_of=None):
    dev_accuracy = binary_accuracy(classifier, dev_ds)
    scores = score_out_of_domain({"model": text_model}, sets)
    return {
        "recipe": recipe, "seed": seed, "sst2_dev": dev_accuracy, **_out_of_domain_fields(scores), "seconds": seconds,
        **({"read_out_of_the_fit_of": read_out_of} if read_out_of else {}),
    }


def _out_of_domain_fields(scores):
    return {"out_of_domain": scores["all"]["accuracy"]["model"],
            "out_of_domain_sets": {name: s["accuracy"]["model"] for name, s in scores["sets"].items()},
            "majority_class": scores["all"]["majority_class_accuracy"]}


def summarize_runs(runs):
    """`{recipe: {"sst2_dev": (mean, sd), "out_of_domain": (mean, sd), "seeds": n}}`, sd over seeds (ddof 1).

    >>> summary = summarize_runs([{"recipe": "plain", "sst2_dev": 0.84, "out_of_domain": 0.65},
    ...                           {"recipe": "plain", "sst2_dev": 0.86, "out_of_domain": 0.67}])
    >>> [round(x, 3) for x in summary["plain"]["sst2_dev"]]
    [0.85, 0.014]
    """
    summary = {}
    for recipe in dict.fromkeys(run["recipe"] for run in runs):
        mine = [run for run in runs if run["recipe"] == recipe]
        summary[recipe] = {"seeds": len(mine)}
        for key in ("sst2_dev", "out_of_domain"):
            values = np.array([run[key] for run in mine])
            summary[recipe][key] = (float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0)
    return summary


def markdown_table(summary):
    """The comparison as a markdown table, one row a recipe."""
    lines = ["| recipe | seeds | SST-2 dev | product reviews, zero-shot |", "|---|---|---|---|"]
    for recipe, row in summary.items():
        (dev, dev_sd), (ood, ood_sd) = row["sst2_dev"], row["out_of_domain"]
        lines.append(f"| {recipe} | {row['seeds']} | {dev:.3f} ± {dev_sd:.3f} | {ood:.3f} ± {ood_sd:.3f} |")
    return "\n".join(lines)


def combine(paths, out):
    """Pool the runs of several result files (e.g. seeds run in two processes) into `out`.json and .md."""
    records = [json.loads(Path(path).read_text(encoding="utf-8")) for path in paths]
    if len({json.dumps(r["encoder"], sort_keys=True) for r in records}) > 1:
        raise UserError(f"--combine: {', '.join(map(str, paths))} fine-tuned different encoders; combine one encoder's runs.")
    runs = [run for record in records for run in record["runs"]]
    order = list(dict.fromkeys(run["recipe"] for run in runs))
    runs.sort(key=lambda run: (order.index(run["recipe"]), run["seed"]))
    combined = {**records[0], "runs": runs, "summary": summarize_runs(runs), "combined_from": [str(p) for p in paths]}
    Path(out).with_suffix(".json").write_text(json.dumps(combined, indent=2) + "\n", encoding="utf-8")
    Path(out).with_suffix(".md").write_text(markdown_table(combined["summary"]) + "\n", encoding="utf-8")
    print(markdown_table(combined["summary"]))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--combine", nargs="+", metavar="JSON", help="only pool these result files into --out")
    parser.add_argument("--artifacts", help="the artifacts folder where notebooks 01-03 ran")
    parser.add_argument("--data-dir", help="the data folder (default: the one notebook 01 recorded)")
    parser.add_argument("--recipes", nargs="+", default=["plain", "lp_ft", "slow_embedding"],
                        help="recipe names (default: plain lp_ft slow_embedding, each also read out averaged)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44], help="fine-tuning seeds")
    parser.add_argument("--profile", default="cpu", help="the profile whose FINETUNE_* settings are used")
    parser.add_argument("--prompt", help='fine-tune as a cloze with this prompt, e.g. "it was [MASK] ."')
    parser.add_argument("--label-words", default="terrible,great", help="the prompt's label words, negative,positive")
    parser.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE",
                        help="change one of the profile's FINETUNE_* settings, e.g. FINETUNE_EPOCHS=3")
    parser.add_argument("--soup", action="store_true",
                        help="also score each recipe's uniform soup: its weights averaged over the seeds' fits")
    parser.add_argument("--with-bag-of-words", action="store_true",
                        help="also score each model averaged with notebook 01's bag of words (notebook 05's WITH_BAG_OF_WORDS)")
    parser.add_argument("--out", required=True, help="results path without suffix: writes OUT.json and OUT.md")
    args = parser.parse_args(argv)
    if args.combine:
        return combine(args.combine, args.out)
    if args.soup and len(args.seeds) < 2:
        raise UserError(f"--soup averages the fits of several seeds: give two or more --seeds (got {args.seeds}).")
    if not args.artifacts:
        raise UserError("--artifacts is required: the artifacts folder where notebooks 01-03 ran.")
    if args.with_bag_of_words and args.prompt:
        raise UserError("--with-bag-of-words with --prompt: notebook 05 exports the mean with the bag of words for "
                        "the pooled head only; leave out one of them.")
    for recipe in args.recipes:
        try:
            parse_recipe(recipe)
        except ValueError as exc:
            raise UserError(str(exc).replace("FINETUNE_RECIPE", "--recipes")) from None
        if args.prompt and "lp_ft" in parse_recipe(recipe):
            raise UserError(f"--recipes {recipe} with --prompt: a cloze has no pooled head for the linear probe "
                            "of lp_ft; choose plain, slow_embedding or averaged.")

    profile = load_profile(args.profile)
    settings = {key: profile[key] for key in ("FINETUNE_BATCH_SIZE", "FINETUNE_EPOCHS", "FINETUNE_LEARNING_RATE", "BUCKETED")}
    for assignment in args.set:
        name, _, value = assignment.partition("=")
        if name not in settings or not value:
            raise UserError(f"--set {assignment}: give NAME=VALUE with NAME one of {', '.join(settings)}.")
        parsed = parse_value(value, name)  # as `-p NAME VALUE` reads it
        try:
            check_parameter(name, parsed, type(settings[name]))
        except ValueError as exc:
            raise UserError(f"--set {assignment}: {exc}") from None
        settings[name] = parsed
    source = require_artifact(args.artifacts, "03_encoder", files=("config.json", "encoder.keras", "vocab.txt")
                              + (("mlm.weights.h5",) if args.prompt else ()))
    config = read_json(source / "config.json")
    data_dir = Path(args.data_dir) if args.data_dir else data_folder(args.artifacts, config)
    sets = load_out_of_domain_sets(data_dir)
    if not sets:
        raise UserError(f"No out-of-domain set in {data_dir}/{OUT_OF_DOMAIN_FOLDER}/: this comparison scores them.")
    set_precision(config["precision"])
    tokenizer = make_tokenizer(source / "vocab.txt", config["sequence_length"])
    train_sentences, train_labels = load_sst2(data_dir, "train")
    dev_sentences, dev_labels = load_sst2(data_dir, "dev")
    prompt = None
    if args.prompt:
        try:
            prompt = Prompt.parse(tokenizer, args.prompt, args.label_words)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    prompted = (lambda tokens: tokens) if prompt is None else prompt.apply
    data = (tokenizer, prompted(tokenize_texts(tokenizer, train_sentences)), np.asarray(train_labels),
            prompted(tokenize_texts(tokenizer, dev_sentences)), dev_labels, sets)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"artifacts": str(args.artifacts), "encoder": {k: config.get(k) for k in ("corpus", "vocabulary_size", "pretrain_epochs", "train_sequences")},
              "settings": settings, "prompt": args.prompt and f"{args.prompt} ({args.label_words})", "machine": describe_machine(), "runs": []}
    kept = {recipe: SoupMembers() for recipe in args.recipes} if args.soup else {}
    bag_of_words = None
    if args.with_bag_of_words:
        bag_of_words = BagOfWords(load_bag_of_words(args.artifacts), dev_sentences, dev_labels)

    def keep(runs):
        record["runs"].extend(runs)
        for run in runs:
            print(f"{run['recipe']:<32} seed {run['seed']}  SST-2 dev {run['sst2_dev']:.3f}  product reviews "
                  f"{run['out_of_domain']:.3f}  ({run['seconds']:.0f} s)", flush=True)
        record["summary"] = summarize_runs(record["runs"])
        out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        out.with_suffix(".md").write_text(markdown_table(record["summary"]) + "\n", encoding="utf-8")

    # Seed by seed, every recipe: an interrupted comparison still compares like with like.
    for seed in args.seeds:
        for recipe in args.recipes:
            keep(fine_tune_and_score(source, recipe, seed, data, settings, prompt=prompt, kept=kept.get(recipe),
                                     head_seed=args.seeds[0] if args.soup else None, bag_of_words=bag_of_words))
    for recipe_kept in kept.values():
        keep(score_soups(recipe_kept, args.seeds, data, settings, prompt=prompt))
    print(markdown_table(record["summary"]))
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main, "bench/out_of_domain_recipes.py"))

"""The out-of-domain check: how models trained on film reviews do on labelled sentences from elsewhere.

Users run the exported model on their own text (product reviews, support tickets, posts), not on
SST-2. Notebook 05 scores the exported transformer and notebook 01's bag of words zero-shot on
every labelled set in the data folder's `sentiment/` (`nbhelpers.data.load_out_of_domain_sets`),
beside always answering the set's majority class. The sets are a check: nothing is ever trained
or tuned on their labels.

From a shell, any saved raw-text models (`NAME=PATH`, or a bare path named by itself):

    python -m nbhelpers.out_of_domain --data-dir ../shared/data \
        transformer=artifacts/05_export/sentiment.keras "bag of words=artifacts/01_baseline/bag_of_words.keras"

Example (any model that maps a batch of strings to probabilities; here a keyword rule):

>>> import tensorflow as tf
>>> says_great = lambda texts, training: tf.cast(tf.strings.regex_full_match(texts, ".*great.*"), "float32")
>>> sets = {"mine.tsv": (["works great", "broke in a week", "great, until it broke"], [1, 0, 0])}
>>> scores = score_out_of_domain({"keyword": says_great}, sets)
>>> round(scores["all"]["accuracy"]["keyword"], 3), round(scores["all"]["majority_class_accuracy"], 3)
(0.667, 0.667)
>>> print(format_out_of_domain(scores))
set       sentences  positive  majority class  keyword
mine.tsv  3          33.3%     0.667           0.667
all       3          33.3%     0.667           0.667
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from nbhelpers.export import predict_texts

# A sentence is called positive above this probability, as for the SST-2 dev accuracy.
THRESHOLD = 0.5


def _summary(labels, correct):
    labels = np.asarray(labels, bool)
    positive_share = float(labels.mean())
    return {
        "examples": int(labels.size),
        "positive": int(labels.sum()),
        "majority_class_accuracy": max(positive_share, 1.0 - positive_share),
        "accuracy": {name: float(hits.mean()) for name, hits in correct.items()},
    }


def score_out_of_domain(models, sets, threshold=THRESHOLD):
    """Zero-shot accuracy of each raw-text model on each labelled set, and on all of them together.

    Args:
        models: `{name: model}`, each model reading a batch of strings (`.keras` raw-text models
            or loaded SavedModels, as `nbhelpers.export.predict_texts` takes).
        sets: `{set name: (sentences, labels)}`, labels 0/1, e.g. from `load_out_of_domain_sets`.
        threshold: the probability above which a sentence counts as positive.

    Returns:
        `{"sets": {set name: summary}, "all": summary}`, each summary holding `examples`,
        `positive` (how many are), `majority_class_accuracy` (always answering the commoner
        label) and `accuracy` (`{model name: accuracy}`). "all" pools every sentence.
    """
    if not sets:
        raise ValueError("No out-of-domain set to score: pass {name: (sentences, labels)}.")
    per_set, pooled_labels, pooled = {}, [], {name: [] for name in models}
    for set_name, (sentences, labels) in sets.items():
        truth = np.asarray(labels, bool)
        correct = {name: (predict_texts(model, list(sentences)) > threshold) == truth for name, model in models.items()}
        per_set[set_name] = _summary(labels, correct)
        pooled_labels += list(labels)
        for name, hits in correct.items():
            pooled[name].append(hits)
    return {"sets": per_set, "all": _summary(pooled_labels, {n: np.concatenate(h) for n, h in pooled.items()})}


def format_out_of_domain(scores):
    """A plain-text table of `score_out_of_domain`'s result: one row per set, then all together."""
    names = list(scores["all"]["accuracy"])
    rows = [("set", "sentences", "positive", "majority class", *names)]
    for set_name, summary in [*scores["sets"].items(), ("all", scores["all"])]:
        rows.append((
            set_name, f"{summary['examples']:,}", f"{summary['positive'] / summary['examples']:.1%}",
            f"{summary['majority_class_accuracy']:.3f}", *(f"{summary['accuracy'][n]:.3f}" for n in names),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def main(argv=None, stdout=None):
    """Command line: score saved raw-text models on the out-of-domain sets of a data folder.

    Args:
        argv: the arguments (default `sys.argv[1:]`): `--data-dir DIR`, `--json FILE` to also
            write the scores, then models as `NAME=PATH` or `PATH` (`.keras` files or SavedModels).
        stdout: where the table goes (default `sys.stdout`).

    Returns:
        The exit status, 0.
    """
    parser = argparse.ArgumentParser(prog="python -m nbhelpers.out_of_domain", description=main.__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="[NAME=]PATH", help="a .keras raw-text model or a SavedModel folder")
    parser.add_argument("--data-dir", required=True, help="the data folder whose sentiment/*.zip and *.tsv are scored")
    parser.add_argument("--json", help="also write the scores to this file")
    args = parser.parse_args(argv)

    from nbhelpers.data import OUT_OF_DOMAIN_FOLDER, load_out_of_domain_sets
    from nbhelpers.predict import load_model

    sets = load_out_of_domain_sets(args.data_dir)
    if not sets:
        raise SystemExit(
            f"No out-of-domain set in {args.data_dir}/{OUT_OF_DOMAIN_FOLDER}/: expected *.zip (Hu & Liu's "
            "product reviews) or *.tsv (sentence<TAB>label) files."
        )
    models = {}
    for item in args.models:
        # An existing path is a bare path even with a "=" in it (folders like lr=3e-4).
        name, _, path = ("", "", item) if Path(item).exists() else item.partition("=")
        models[name or path] = load_model(path)
    scores = score_out_of_domain(models, sets)
    (stdout or sys.stdout).write(format_out_of_domain(scores) + "\n")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(scores, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

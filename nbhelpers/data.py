"""Loaders for the series' data, in the formats the real datasets use.

A data folder (`DATA_DIR` in notebook 01) is laid out as::

    sst2/train.tsv, sst2/dev.tsv         GLUE SST-2: a `sentence<TAB>label` header, then rows
    vocab/<one file>.txt                 a BERT-style WordPiece vocabulary, one token per line
    wikitext-103/wiki.train.raw, ...     WikiText raw (or `wikitext-2/`, or `wikitext/`; the
                                         tokenized `wiki.*.tokens` files are read too)
    corpus/movie_reviews.zip             optional: Pang & Lee's 2,000 movie reviews (NLTK's zip),
                                         unlabelled in-domain text for pretraining

`nbhelpers.acquire` downloads these into a data folder.

An empty `DATA_DIR` means the embedded default: `nbhelpers.synthetic` writes seeded data in
exactly this layout, so the same code path runs offline anywhere.

Example:

>>> data_dir = resolve_data_dir("", artifacts_dir="artifacts")
>>> sentences, labels = load_sst2(data_dir, "train")
>>> lines = load_wikitext(data_dir, "valid")
>>> train_texts, valid_texts = load_corpus(data_dir, "wikitext")
"""

import csv
import zipfile
from pathlib import Path

import numpy as np

from nbhelpers import synthetic

SST2_SPLITS = ("train", "dev")
WIKITEXT_SPLITS = ("train", "valid", "test")
# The guide keeps only WikiText lines longer than this (drops headings and blank lines).
WIKITEXT_MIN_CHARS = 100
# Searched in this order: the largest WikiText first.
WIKITEXT_FOLDERS = ("wikitext-103", "wikitext-2", "wikitext")
MOVIE_REVIEWS_ZIP = Path("corpus") / "movie_reviews.zip"
# The pretraining corpora notebook 02 can read (`CORPUS`).
CORPORA = ("wikitext", "movie_reviews", "sst2_unlabelled", "movie_reviews_and_sst2")
# Corpora without a validation split hold out every n-th document for it (5 %).
HOLD_OUT_EVERY = 20


class DataFormatError(ValueError):
    """A data file is malformed; the message names the file and line."""


def resolve_data_dir(data_dir, artifacts_dir):
    """Return the data folder to read: `data_dir`, or the generated default when it is empty.

    Args:
        data_dir: a folder in the layout above, or "" for the embedded synthetic data.
        artifacts_dir: where the synthetic data is generated (under `data/`), once.
    """
    if not data_dir:
        return synthetic.ensure_synthetic_data(Path(artifacts_dir) / "data" / "synthetic")
    folder = Path(data_dir).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"DATA_DIR {str(data_dir)!r} is not a folder. Pass a folder holding sst2/train.tsv, "
            "sst2/dev.tsv, vocab/<vocabulary>.txt and wikitext-103/wiki.{train,valid}.raw "
            "(`python -m nbhelpers.acquire --data-dir FOLDER all` downloads them), "
            'or leave DATA_DIR empty ("") to use the embedded synthetic data.'
        )
    return folder.resolve()


def _require_file(path, what):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: expected the file {path}.")
    return path


def load_sst2(data_dir, split):
    """Read a GLUE SST-2 split (`sst2/train.tsv` or `sst2/dev.tsv`).

    Args:
        data_dir: the data folder.
        split: "train" or "dev".

    Returns:
        `(sentences, labels)`: a list of str and a list of int (0 negative, 1 positive).

    Raises:
        DataFormatError: a bad header, a row without exactly two fields or with a label other
            than 0/1; the message gives the file and line number.
    """
    if split not in SST2_SPLITS:
        raise ValueError(f"SST-2 split must be one of {SST2_SPLITS}, got {split!r}.")
    path = _require_file(Path(data_dir) / "sst2" / f"{split}.tsv", f"SST-2 {split} split")
    sentences, labels = [], []
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(rows, None)
        if header != ["sentence", "label"]:
            raise DataFormatError(
                f"{path}, line 1: expected the header 'sentence<TAB>label', got {header!r}."
            )
        for line_number, row in enumerate(rows, start=2):
            if len(row) != 2 or row[1].strip() not in ("0", "1"):
                raise DataFormatError(
                    f"{path}, line {line_number}: expected 'sentence<TAB>label' with label 0 or 1, "
                    f"got {row!r}."
                )
            sentences.append(row[0])
            labels.append(int(row[1]))
    if not sentences:
        raise DataFormatError(f"{path}: no rows after the header.")
    return sentences, labels


def _wikitext_file(data_dir, split):
    names = (f"wiki.{split}.raw", f"wiki.{split}.tokens")
    for folder in WIKITEXT_FOLDERS:
        for name in names:
            if (Path(data_dir) / folder / name).is_file():
                return Path(data_dir) / folder / name
    raise FileNotFoundError(
        f"WikiText {split} split not found: expected {Path(data_dir) / WIKITEXT_FOLDERS[0] / names[0]} "
        f"(or the same under {', '.join(WIKITEXT_FOLDERS[1:])}/, or a .tokens file). "
        "`python -m nbhelpers.acquire --data-dir DATA_DIR wikitext-103` downloads it."
    )


def load_wikitext(data_dir, split, min_chars=WIKITEXT_MIN_CHARS):
    """Read a WikiText split (`wiki.<split>.raw`), keeping lines longer than `min_chars`.

    Args:
        data_dir: the data folder; `wikitext-103/`, `wikitext-2/` and `wikitext/` are searched.
        split: "train", "valid" or "test".
        min_chars: keep stripped lines longer than this (the guide's filter: 100).

    Returns:
        A list of str, one paragraph each.
    """
    if split not in WIKITEXT_SPLITS:
        raise ValueError(f"WikiText split must be one of {WIKITEXT_SPLITS}, got {split!r}.")
    path = _wikitext_file(data_dir, split)
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f]
    kept = [line for line in lines if len(line) > min_chars]
    if not kept:
        raise DataFormatError(f"{path}: no line is longer than {min_chars} characters.")
    return kept


def load_movie_reviews(data_dir):
    """Read the 2,000 reviews of `corpus/movie_reviews.zip` (NLTK's copy of Pang & Lee's v2.0).

    Returns:
        A list of str, one review each (its sentences joined by spaces), in file-name order.
    """
    path = _require_file(Path(data_dir) / MOVIE_REVIEWS_ZIP, "The movie-review corpus")
    try:
        with zipfile.ZipFile(path) as archive:
            names = sorted(n for n in archive.namelist() if n.endswith(".txt") and "/cv" in n)
            reviews = [" ".join(archive.read(n).decode("utf-8", "replace").split()) for n in names]
    except zipfile.BadZipFile as error:
        raise DataFormatError(f"{path}: not a readable zip archive ({error}).") from None
    if not reviews:
        raise DataFormatError(f"{path}: holds no movie_reviews/{{pos,neg}}/cv*.txt files.")
    return reviews


def _hold_out(documents):
    train = [d for i, d in enumerate(documents) if i % HOLD_OUT_EVERY != HOLD_OUT_EVERY - 1]
    valid = [d for i, d in enumerate(documents) if i % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1]
    return train, valid


def load_corpus(data_dir, corpus):
    """Read an unlabelled pretraining corpus as `(train_texts, valid_texts)`.

    Args:
        data_dir: the data folder.
        corpus: "wikitext" (its train and valid splits), "movie_reviews" (every 20th review held
            out for validation) or "sst2_unlabelled" (the SST-2 training sentences without
            their labels, every 20th held out; never the dev set, which fine-tuning reports on)
            or "movie_reviews_and_sst2" (both: the most in-domain text for SST-2's dev sentences).
    """
    if corpus == "wikitext":
        return load_wikitext(data_dir, "train"), load_wikitext(data_dir, "valid")
    if corpus == "movie_reviews":
        return _hold_out(load_movie_reviews(data_dir))
    if corpus == "sst2_unlabelled":
        return _hold_out(load_sst2(data_dir, "train")[0])
    if corpus == "movie_reviews_and_sst2":
        parts = [load_corpus(data_dir, "movie_reviews"), load_corpus(data_dir, "sst2_unlabelled")]
        return parts[0][0] + parts[1][0], parts[0][1] + parts[1][1]
    raise ValueError(f"Unknown corpus {corpus!r}: choose one of {', '.join(CORPORA)}.")


def sample_labelled(sentences, labels, budget, seed):
    """A seeded, class-balanced sample of `budget` labelled examples (all of them when `budget` is 0).

    Half the budget comes from each class (as far as a class has examples), in the original order.

    Example:

    >>> sample_labelled(["a", "b", "c", "d"], [0, 1, 0, 1], budget=2, seed=0)[1]
    [0, 1]
    """
    if budget <= 0 or budget >= len(labels):
        return list(sentences), list(labels)
    rng = np.random.default_rng(seed)
    labels_array = np.asarray(labels)
    chosen = []
    for index, label in enumerate(sorted(set(labels))):
        members = np.flatnonzero(labels_array == label)
        share = budget // 2 + (budget % 2 if index == 0 else 0)
        chosen += list(rng.choice(members, size=min(share, len(members)), replace=False))
    chosen = sorted(chosen)
    return [sentences[i] for i in chosen], [labels[i] for i in chosen]


def find_vocabulary(data_dir):
    """Return the path of the single `.txt` vocabulary in `data_dir/vocab/`."""
    folder = Path(data_dir) / "vocab"
    candidates = sorted(folder.glob("*.txt")) if folder.is_dir() else []
    if len(candidates) != 1:
        raise FileNotFoundError(
            f"Expected exactly one vocabulary file (*.txt) in {folder}, found "
            f"{[c.name for c in candidates] or 'none'}."
        )
    return candidates[0]


def load_vocabulary(path):
    """Read a WordPiece vocabulary (one token per line) and check it has the special tokens.

    Returns:
        The list of tokens; a token's id is its line index.
    """
    path = _require_file(path, "Vocabulary")
    with open(path, encoding="utf-8") as f:
        tokens = [line.rstrip("\n") for line in f]
    for line_number, token in enumerate(tokens, start=1):
        if not token.strip():
            raise DataFormatError(f"{path}, line {line_number}: empty token.")
    missing = [t for t in synthetic.SPECIAL_TOKENS if t not in tokens]
    if missing:
        raise DataFormatError(f"{path}: the vocabulary lacks the special tokens {missing}.")
    if tokens[0] != "[PAD]":
        raise DataFormatError(f"{path}, line 1: the first token must be [PAD] (id 0), got {tokens[0]!r}.")
    return tokens

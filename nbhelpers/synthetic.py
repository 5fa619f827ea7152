"""The embedded default data: a seeded synthetic corpus and sentiment set, in the real formats.

Nothing here is third-party text. A small English-like grammar writes:

- `sst2/train.tsv`, `sst2/dev.tsv`: short movie-review sentences labelled 1 (positive) or
  0 (negative). The label follows the sentiment words, flipped by negation ("is not dull") and
  decided by the second clause after "but", with a little label noise: a bag of words gets far,
  word order gets further.
- `wikitext/wiki.{train,valid,test}.raw`: encyclopedia-like articles with ` = Headings = `,
  blank lines and ` @-@ ` joins as in WikiText, about invented places, people and films.
- `vocab/vocab.txt`: a WordPiece vocabulary computed from that text with
  `keras_hub.tokenizers.compute_word_piece_vocabulary`.

The same seed gives byte-identical files.

Example:

>>> folder = ensure_synthetic_data("artifacts/data/synthetic")
>>> sorted(p.name for p in folder.iterdir())
['sst2', 'synthetic.json', 'vocab', 'wikitext']
"""

import json
import os
import random
import shutil
import tempfile
from pathlib import Path

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VERSION = 1
DEFAULT_SEED = 1234
SIZES = {"sst2_train": 8000, "sst2_dev": 872, "wiki_train": 3000, "wiki_valid": 300, "wiki_test": 300}
VOCABULARY_SIZE = 3000

POSITIVE = (
    "wonderful moving brilliant charming gripping delightful funny beautiful clever heartfelt "
    "memorable stunning fresh warm engaging superb touching witty elegant thrilling inventive "
    "lovely powerful graceful joyous"
).split()
NEGATIVE = (
    "dull tedious clumsy boring predictable bland messy shallow lifeless tiresome awkward "
    "forgettable silly weak flat painful hollow sluggish stale pointless grating muddled "
    "cheap lazy dreary"
).split()
SUBJECTS = [
    "the film", "this movie", "the story", "the acting", "the script", "the soundtrack",
    "the director's vision", "every scene", "the cast", "the ending", "its humor", "the plot",
    "the dialogue", "the lead performance", "the camera work", "the premise", "this sequel",
    "the pacing", "the screenplay", "the final act",
]
VERBS = ["is", "feels", "seems", "remains", "turns out to be", "looks", "comes across as"]
NEGATED_VERBS = ["is not", "never feels", "is hardly", "is far from", "does not seem"]
INTENSIFIERS = ["", "", "", "very", "truly", "rather", "remarkably", "surprisingly", "utterly", "quite"]
TAILS = [
    "", "", "", "from start to finish", "in every way", "for most of its running time",
    "despite a slow start", "at times", "in the end", "on the whole", "for a café comedy",
]
NOUNS = [
    "drama", "comedy", "thriller", "romance", "documentary", "adventure", "mystery", "musical",
    "western", "satire",
]
KINDS = ["town", "river", "castle", "village", "railway station", "cathedral", "harbour", "valley"]
PLACE_WORDS = [
    "north", "south", "old", "new", "upper", "lower", "great", "little", "east", "west",
]
TOPICS = [
    "trade", "farming", "music", "shipbuilding", "painting", "festivals", "bridges", "wine",
    "football", "poetry", "theatre", "cinema", "weaving", "mining", "fishing", "printing",
]
SYLLABLES = "ka ve lo mar ten sa ri do bel an fer gu is lan or ven ta mi ro sel".split()


def _name(rng, parts=(2, 3)):
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(*parts))).capitalize()


def sentiment_example(rng, noise=0.05):
    """Return one `(sentence, label)` pair drawn from the grammar."""
    subject, verb, intensifier, tail = (
        rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(INTENSIFIERS), rng.choice(TAILS),
    )
    label = rng.randint(0, 1)
    words = POSITIVE if label else NEGATIVE
    template = rng.random()
    if template < 0.45:
        text = f"{subject} {verb} {intensifier} {rng.choice(words)} {tail}"
    elif template < 0.65:
        # Negation flips the adjective's polarity.
        opposite = NEGATIVE if label else POSITIVE
        text = f"{subject} {rng.choice(NEGATED_VERBS)} {intensifier} {rng.choice(opposite)}"
    elif template < 0.85:
        # A contrast: the clause after "but" decides.
        opposite = NEGATIVE if label else POSITIVE
        text = (
            f"{subject} {verb} {rng.choice(opposite)} , but {rng.choice(SUBJECTS)} "
            f"{verb} {intensifier} {rng.choice(words)}"
        )
    else:
        text = f"a {rng.choice(words)} {rng.choice(NOUNS)} with {rng.choice(words)} {rng.choice(SUBJECTS)[4:]}"
    if rng.random() < noise:
        label = 1 - label
    text = " ".join(text.split())
    if rng.random() < 0.3:
        text = text[0].upper() + text[1:]
    return text, label


def _article(rng):
    place = _name(rng)
    kind = rng.choice(KINDS)
    lines = ["", f" = {place} = ", ""]
    for _ in range(rng.randint(2, 4)):
        person, other = f"{_name(rng)} {_name(rng)}", _name(rng)
        year = rng.randint(1400, 2010)
        topic, topic2 = rng.sample(TOPICS, 2)
        sentences = [
            f"{place} is a {rng.choice(PLACE_WORDS)} {kind} in the region of {other} .",
            f"It was first recorded in {year} , when {person} built a {rng.choice(KINDS)} near the {rng.choice(KINDS)} .",
            f"The {kind} is known for its {topic} and its {topic2} , which drew visitors from {_name(rng)} .",
            f"In {year + rng.randint(1, 90)} the local {rng.choice(NOUNS)} \" {_name(rng)} \" was filmed there ; "
            f"critics called it {rng.choice(POSITIVE + NEGATIVE)} and {rng.choice(POSITIVE + NEGATIVE)} .",
            f"{person} wrote that the {topic} of {place} was {rng.choice(POSITIVE + NEGATIVE)} in the {year // 100 + 1}th century .",
            f"The population grew to {rng.randint(2, 90)} @,@ {rng.randint(100, 999)} by {year + rng.randint(20, 200)} .",
            f"A {rng.choice(['well', 'long', 'short', 'little'])} @-@ known {rng.choice(NOUNS)} about {topic} was set in {place} .",
        ]
        rng.shuffle(sentences)
        lines.append(" " + " ".join(sentences[: rng.randint(3, 6)]) + " ")
        if rng.random() < 0.4:
            lines += ["", f" = = {rng.choice(['History', 'Culture', 'Geography', 'In film'])} = = ", ""]
    return lines


def _write_lines(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")


def write_synthetic_data(folder, seed=DEFAULT_SEED, sizes=SIZES, vocabulary_size=VOCABULARY_SIZE):
    """Write the synthetic data set into `folder` (which must not exist yet).

    Args:
        folder: the folder to create.
        seed: the random seed; the same seed gives identical files.
        sizes: how many sentences per SST-2 split and articles per WikiText split.
        vocabulary_size: the WordPiece vocabulary's maximum size.
    """
    from nbhelpers.tokenization import compute_vocabulary  # Imported here: it loads TensorFlow.

    folder = Path(folder)
    rng = random.Random(seed)
    texts = []
    for split in ("train", "dev"):
        rows = [sentiment_example(rng) for _ in range(sizes[f"sst2_{split}"])]
        _write_lines(folder / "sst2" / f"{split}.tsv", ["sentence\tlabel"] + [f"{s}\t{y}" for s, y in rows])
        texts += [s for s, _ in rows] if split == "train" else []
    for split in ("train", "valid", "test"):
        lines = [line for _ in range(sizes[f"wiki_{split}"]) for line in _article(rng)]
        _write_lines(folder / "wikitext" / f"wiki.{split}.raw", lines)
        texts += [line for line in lines if line.strip()] if split == "train" else []
    _write_lines(folder / "vocab" / "vocab.txt", compute_vocabulary(texts, vocabulary_size))
    with open(folder / "synthetic.json", "w") as f:
        json.dump({"version": VERSION, "seed": seed, "sizes": sizes}, f, indent=2, sort_keys=True)


def ensure_synthetic_data(folder, seed=DEFAULT_SEED):
    """Return `folder` holding the synthetic data, generating it once (atomically) if needed."""
    folder = Path(folder)
    stamp = {"version": VERSION, "seed": seed, "sizes": SIZES}
    marker = folder / "synthetic.json"
    if marker.is_file() and json.loads(marker.read_text()) == stamp:
        return folder.resolve()
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.staging-", dir=folder.parent))
    try:
        write_synthetic_data(staging, seed=seed)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder.resolve()

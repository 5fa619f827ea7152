"""The embedded default data: a seeded synthetic corpus and sentiment set, in the real formats.

Nothing here is third-party text. A small English-like grammar writes a controlled experiment in
why pretraining helps:

- `sst2/train.tsv`, `sst2/dev.tsv`: short movie-review sentences labelled 1 (positive) or
  0 (negative). The label follows the sentiment words, flipped by negation ("is not dull") and
  decided by the second clause after "but", with a little label noise: a bag of words gets far,
  word order gets further. The lexicon has many sentiment words (`POSITIVE`, `NEGATIVE`), but
  the *training* sentences use only the first `LABELLED_WORDS` of each list; the dev sentences
  use them all. Most sentiment words are never shown with a label, as most words of real
  reviews are rare in a labelled set.
- `wikitext/wiki.{train,valid,test}.raw`: encyclopedia-like articles with ` = Headings = `,
  blank lines and ` @-@ ` joins as in WikiText, about invented places, people and films. The
  films' reception uses every sentiment word in contexts that give its polarity away, as real
  text does ("critics praised its ...", "a ... and tiresome second half", beside words of the
  same polarity): unlabelled text says what the labels never show.
- `vocab/vocab.txt`: a WordPiece vocabulary computed from that text with
  `keras_hub.tokenizers.compute_word_piece_vocabulary`; every sentiment word is a whole token.

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

from nbhelpers.tokenization import compute_vocabulary

VERSION = 2
DEFAULT_SEED = 1234
SIZES = {"sst2_train": 8000, "sst2_dev": 872, "wiki_train": 3000, "wiki_valid": 300, "wiki_test": 300}
VOCABULARY_SIZE = 3000

# The sentiment lexicon. The first LABELLED_WORDS of each list are the only sentiment words the
# labelled training sentences contain (notebook 04's prompt answers, "dull" and "wonderful", among
# them); the rest occur in the dev sentences and the unlabelled corpus only.
POSITIVE = (
    "wonderful brilliant charming funny moving clever beautiful gripping "
    "delightful heartfelt memorable stunning fresh warm engaging superb touching witty elegant "
    "thrilling inventive lovely powerful graceful joyous dazzling radiant tender rousing vivid "
    "masterful exquisite luminous sparkling poignant captivating enchanting absorbing assured "
    "generous playful hilarious magnificent marvelous splendid striking terrific uplifting wise "
    "stirring sublime compelling gorgeous riveting nuanced affecting fascinating refreshing "
    "breathtaking soaring"
).split()
NEGATIVE = (
    "dull tedious clumsy boring predictable bland messy shallow "
    "lifeless tiresome awkward forgettable silly weak flat painful hollow sluggish stale pointless "
    "grating muddled cheap lazy dreary bloated clunky derivative drab dreadful feeble flimsy "
    "insipid joyless laborious lame leaden listless monotonous plodding ponderous sloppy "
    "stilted stodgy trite turgid uninspired vapid wooden annoying banal incoherent mediocre "
    "overlong pretentious shoddy soulless tepid unfunny contrived"
).split()
LABELLED_WORDS = 8
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
# Parts of a film the reception in the corpus talks about.
PARTS = [
    "score", "second half", "opening", "script", "cast", "ending", "dialogue", "photography",
    "pacing", "lead performance", "humor", "story", "editing", "final act", "premise",
]
# Reception in the unlabelled corpus: {w} is a sentiment word of the film's polarity, {k} one of
# the labelled words of that polarity, {part}/{part2} parts of the film. Each context names the
# polarity by its cue ("praised", "panned") or its company (words of the same polarity).
RECEPTION = {
    1: [
        "Critics praised its {w} {part} and its {w} {part2} .",
        "Reviewers called it {w} , {w} and {k} .",
        "Audiences loved the {w} {part} , and the film won prizes for its {w} {part2} .",
        "The {part} is {w} and {k} , a triumph for the studio .",
        "It has a {w} and {k} {part} .",
        "{person} wrote that the film is {w} .",
        "The {part} was hailed as {w} , the {part2} as {w} .",
    ],
    0: [
        "Critics panned its {w} {part} and its {w} {part2} .",
        "Reviewers called it {w} , {w} and {k} .",
        "Audiences walked out of the {w} {part} , and the film lost money on its {w} {part2} .",
        "The {part} is {w} and {k} , a failure for the studio .",
        "It has a {w} and {k} {part} .",
        "{person} wrote that the film is {w} .",
        "The {part} was mocked as {w} , the {part2} as {w} .",
    ],
}
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


def labelled_lexicon():
    """The sentiment words the labelled training sentences use: `(negative, positive)` lists."""
    return NEGATIVE[:LABELLED_WORDS], POSITIVE[:LABELLED_WORDS]


def sentiment_example(rng, lexicon=(NEGATIVE, POSITIVE), noise=0.05):
    """Return one `(sentence, label)` pair drawn from the grammar.

    Args:
        rng: a `random.Random`.
        lexicon: `(negative words, positive words)` to draw the sentiment words from; the
            training split passes `labelled_lexicon()`, the dev split the whole lexicon.
        noise: the share of labels flipped at random.
    """
    subject, verb, intensifier, tail = (
        rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(INTENSIFIERS), rng.choice(TAILS),
    )
    label = rng.randint(0, 1)
    words, opposite = lexicon[label], lexicon[1 - label]
    template = rng.random()
    if template < 0.45:
        text = f"{subject} {verb} {intensifier} {rng.choice(words)} {tail}"
    elif template < 0.65:
        # Negation flips the adjective's polarity.
        text = f"{subject} {rng.choice(NEGATED_VERBS)} {intensifier} {rng.choice(opposite)}"
    elif template < 0.85:
        # A contrast: the clause after "but" decides.
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


def _reception(rng, polarity):
    """Sentences about one film's reception: every sentiment word in them has `polarity`."""
    words, known = (NEGATIVE, POSITIVE)[polarity], labelled_lexicon()[polarity]
    sentences = []
    for template in rng.sample(RECEPTION[polarity], rng.randint(2, 4)):
        part, part2 = rng.sample(PARTS, 2)
        # Each {w} is drawn afresh (str.format would repeat one word).
        pieces = template.replace("{person}", f"{_name(rng)} {_name(rng)}").replace("{k}", rng.choice(known))
        pieces = pieces.replace("{part2}", part2).replace("{part}", part).split("{w}")
        sentences.append("".join(p + rng.choice(words) for p in pieces[:-1]) + pieces[-1])
    return sentences


def _film_article(rng):
    title, polarity = _name(rng), rng.randint(0, 1)
    director, place = f"{_name(rng)} {_name(rng)}", _name(rng)
    year = rng.randint(1920, 2010)
    lines = ["", f" = {title} ( film ) = ", ""]
    lines.append(f" {title} is a {year} {rng.choice(NOUNS)} directed by {director} and set in {place} . "
                 f"It was filmed near the {rng.choice(KINDS)} of {_name(rng)} . ")
    lines += ["", " = = Reception = = ", ""]
    lines.append(" " + " ".join(_reception(rng, polarity)) + " ")
    if rng.random() < 0.5:
        lines.append(" " + " ".join(_reception(rng, polarity)) + " ")
    return lines


def _place_article(rng):
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
            f"In {year + rng.randint(1, 90)} the local {rng.choice(NOUNS)} \" {_name(rng)} \" was filmed there .",
            f"The population grew to {rng.randint(2, 90)} @,@ {rng.randint(100, 999)} by {year + rng.randint(20, 200)} .",
            f"A {rng.choice(['well', 'long', 'short', 'little'])} @-@ known {rng.choice(NOUNS)} about {topic} was set in {place} .",
        ]
        rng.shuffle(sentences)
        lines.append(" " + " ".join(sentences[: rng.randint(3, 5)]) + " ")
        if rng.random() < 0.4:
            lines += ["", f" = = {rng.choice(['History', 'Culture', 'Geography'])} = = ", ""]
    return lines


def _article(rng, film_share=0.6):
    """One article: about a film (with its reception) or about a place."""
    return _film_article(rng) if rng.random() < film_share else _place_article(rng)


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
    folder = Path(folder)
    rng = random.Random(seed)
    texts = []
    for split, lexicon in (("train", labelled_lexicon()), ("dev", (NEGATIVE, POSITIVE))):
        rows = [sentiment_example(rng, lexicon) for _ in range(sizes[f"sst2_{split}"])]
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
    from nbhelpers import TensorFlowMissing, tensorflow_available

    if not tensorflow_available():  # its vocabulary is computed with tensorflow-text
        raise TensorFlowMissing(f"The embedded synthetic data ({folder}) is generated with TensorFlow: run notebook 01 "
                                "where TensorFlow is installed and bring its artifacts folder's data/ along.")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.staging-", dir=folder.parent))
    try:
        write_synthetic_data(staging, seed=seed)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder.resolve()


def lexicon_coverage(data_dir):
    """Which sentiment words of the synthetic lexicon the labels show, and how often the corpus does.

    Args:
        data_dir: a data folder; the lexicon is this module's, so only a folder written by
            `write_synthetic_data` (it holds `synthetic.json`) is counted.

    Returns:
        None for other data; else `{"labelled": words the training sentences contain,
        "unlabelled": words they never contain, "corpus_counts": {word: occurrences in the
        unlabelled training corpus}}`, words in lexicon order (positive first).
    """
    data_dir = Path(data_dir)
    if not (data_dir / "synthetic.json").is_file():
        return None
    lexicon = POSITIVE + NEGATIVE

    def counts(path, column=None):
        found = dict.fromkeys(lexicon, 0)
        with open(path, encoding="utf-8") as f:
            for line in f:
                text = line.split("\t")[0] if column == 0 else line
                for word in text.lower().split():
                    if word in found:
                        found[word] += 1
        return found

    labelled = counts(data_dir / "sst2" / "train.tsv", column=0)
    return {
        "labelled": [w for w in lexicon if labelled[w]],
        "unlabelled": [w for w in lexicon if not labelled[w]],
        "corpus_counts": counts(data_dir / "wikitext" / "wiki.train.raw"),
    }

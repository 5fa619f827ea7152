"""Loaders for the series' data, in the formats the real datasets use.

A data folder (`DATA_DIR` in notebook 01) holds SST-2, a WordPiece vocabulary, WikiText and optional
corpora, laid out as docs/data.md describes (the one description of the layout). Each loader names
the files it reads.

`nbhelpers.acquire` downloads these into a data folder.

An empty `DATA_DIR` means the embedded default: `nbhelpers.synthetic` writes seeded data in
exactly this layout, so the same code path runs offline anywhere.

Example:

>>> data_dir = resolve_data_dir("", artifacts_dir="artifacts")
>>> sentences, labels = load_sst2(data_dir, "train")
>>> lines = load_wikitext(data_dir, "valid")
>>> train_texts, valid_texts = load_corpus(data_dir, "wikitext")
>>> load_out_of_domain_sets(data_dir)  # the synthetic data has none
{}
"""

import csv
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np

from nbhelpers import synthetic
from nbhelpers.tokenization import PAD, PAD_ID, SPECIAL_TOKENS

SST2_SPLITS = ("train", "dev")
WIKITEXT_SPLITS = ("train", "valid", "test")
# The guide keeps only WikiText lines longer than this (drops headings and blank lines).
WIKITEXT_MIN_CHARS = 100
# Searched in this order: the largest WikiText first.
WIKITEXT_FOLDERS = ("wikitext-103", "wikitext-2", "wikitext")
MOVIE_REVIEWS_ZIP = Path("corpus") / "movie_reviews.zip"
BROWN_ZIP = Path("corpus") / "brown.zip"
ABC_ZIP = Path("corpus") / "abc.zip"
WEBTEXT_ZIP = Path("corpus") / "webtext.zip"
# The Brown Corpus's 500 texts (`brown/ca01` ... `brown/cr09`); its README, CONTENTS and cats.txt are not text.
BROWN_TEXT_MEMBER = re.compile(r"brown/c[a-r]\d\d")
# Brown writes opening and closing double quotes as the tokens `` and ''; WordPiece would cut each
# into two quote marks, so they become the one character the other corpora use.
BROWN_QUOTES = {"``": '"', "''": '"'}
# Web text's files hold one short item a line (a bug report's title, a personal ad, a wine note, a
# line of a film script) and few blank lines: a document is a blank-line block, cut into runs of
# at most this many lines (about 100-400 words, a review's length), so that the hold-out draws
# from every file rather than taking whole files.
WEBTEXT_LINES_PER_DOCUMENT = 20
# The pretraining corpora notebook 02 can read (`CORPUS`).
CORPORA = (
    "wikitext", "movie_reviews", "sst2_unlabelled", "movie_reviews_and_sst2", "general",
    "movie_reviews_sst2_and_general",
)
# The general-domain English of `general`, each source held out on its own.
GENERAL_SOURCES = ("brown", "abc", "webtext")
# Corpora without a validation split hold out every n-th document for it (5 %).
HOLD_OUT_EVERY = 20
# Labelled sentences from outside films (the out-of-domain check), and the formats read there.
OUT_OF_DOMAIN_FOLDER = "sentiment"
OUT_OF_DOMAIN_SUFFIXES = (".zip", ".tsv")
# Hu & Liu's opinion tag: a feature's `[+n]` or `[-n]`, n the strength (1-3). A tag without its
# strength (`[+]`, 33 in NLTK's two files) is not counted; that gives the reference counts of
# labelled sentences (1,719 + 2,067, in ../shared/data/README.md on the project's machines).
HU_LIU_OPINION_TAG = re.compile(r"\[([+-])(\d)\]")
HU_LIU_SENTENCE_MARK = "##"


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


def _require_file(path, what, acquire_name=None):
    """Return `path` as a Path; a missing file is a FileNotFoundError that says which file, and,
    given `acquire_name` (a dataset of `nbhelpers.acquire`), the command that downloads it."""
    path = Path(path)
    if not path.is_file():
        hint = (
            f" `python -m nbhelpers.acquire --data-dir DATA_DIR {acquire_name}` downloads it."
            if acquire_name else ""
        )
        raise FileNotFoundError(f"{what} not found: expected the file {path}.{hint}")
    return path


def _labelled_row(fields, path, line_number, shown):
    """One `sentence<TAB>label` row's fields as `(sentence, label)`; else an error naming file and line."""
    if len(fields) != 2 or fields[1].strip() not in ("0", "1"):
        raise DataFormatError(
            f"{path}, line {line_number}: expected 'sentence<TAB>label' with label 0 or 1, got {shown!r}."
        )
    return fields[0], int(fields[1])


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
            sentence, label = _labelled_row(row, path, line_number, shown=row)
            sentences.append(sentence)
            labels.append(label)
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
    path = _require_file(Path(data_dir) / MOVIE_REVIEWS_ZIP, "The movie-review corpus", "movie_reviews")
    try:
        with zipfile.ZipFile(path) as archive:
            names = sorted(n for n in archive.namelist() if n.endswith(".txt") and "/cv" in n)
            reviews = [" ".join(archive.read(n).decode("utf-8", "replace").split()) for n in names]
    except zipfile.BadZipFile as error:
        raise DataFormatError(f"{path}: not a readable zip archive ({error}).") from None
    if not reviews:
        raise DataFormatError(f"{path}: holds no movie_reviews/{{pos,neg}}/cv*.txt files.")
    return reviews


def _decode_text(raw):
    """Text from bytes: UTF-8, or Latin-1 where a file is not UTF-8 (ABC's science.txt and four of
    web text's six files are Latin-1: a degree sign, a pound sign, accented names)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _read_zip_texts(path, is_text_member, expected):
    """`{member name: text}` for the members of the zip `path` that `is_text_member` accepts, in name order.

    Args:
        path: the zip file (checked to exist by the caller).
        is_text_member: a function of a member name, True for the files to read.
        expected: how the files to read are named, for the error when there is none.

    Raises:
        DataFormatError: not a readable zip (truncated, damaged, a failed checksum), or no member
            to read; the message names the file.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = sorted(n for n in archive.namelist() if is_text_member(n))
            texts = {name: _decode_text(archive.read(name)) for name in names}
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:  # a damaged member fails only when read
        raise DataFormatError(f"{path}: not a readable zip archive ({error}).") from None
    if not texts:
        raise DataFormatError(f"{path}: holds no {expected} files.")
    return texts


def _blocks(text):
    """The blank-line-separated blocks of `text`, each a list of its stripped, non-empty lines."""
    blocks, block = [], []
    for line in text.splitlines():
        if line.strip():
            block.append(line.strip())
        elif block:
            blocks.append(block)
            block = []
    if block:
        blocks.append(block)
    return blocks


def _brown_word(token):
    """A Brown token `word/TAG` without its tag (`Atlanta's/np$` -> `Atlanta's`, ``` ``/`` ``` -> `"`).

    The tag follows the last slash, so words with a slash of their own (`and/or/cc`) keep it.
    """
    word, slash, _ = token.rpartition("/")
    if not slash:
        return token
    return BROWN_QUOTES.get(word, word)


def load_brown(data_dir):
    """Read the 500 texts of `corpus/brown.zip` (NLTK's copy of the Brown Corpus) as plain text.

    Each token of the corpus is written `word/TAG`; the tags are dropped, `` and '' become `"`.
    The texts are about 2,000-word samples of 15 genres of edited American English (press,
    fiction, learned, hobbies, humour...): 1.16M words in all.

    Args:
        data_dir: the data folder.

    Returns:
        A list of str, one text (file) each, its words joined by spaces, in file-name order
        (`brown/ca01` first: the corpus's genres in turn).

    Raises:
        FileNotFoundError: no `corpus/brown.zip` (the message names the command that downloads it).
        DataFormatError: not a readable zip, or no `brown/c??NN` file in it.
    """
    path = _require_file(Path(data_dir) / BROWN_ZIP, "The Brown Corpus", "brown")
    texts = _read_zip_texts(path, BROWN_TEXT_MEMBER.fullmatch, "brown/c??NN")
    return [" ".join(_brown_word(token) for token in text.split()) for text in texts.values()]


def load_abc(data_dir):
    """Read the news stories of `corpus/abc.zip` (NLTK's Australian Broadcasting Commission 2006
    transcripts: `abc/rural.txt`, `abc/science.txt`; 664k words).

    A blank line ends a story (a headline or picture caption, then one sentence a line), so a
    story is a document, as a review is in `load_movie_reviews`.

    Args:
        data_dir: the data folder.

    Returns:
        A list of str, one story each (its lines joined by spaces): rural's stories, then science's.

    Raises:
        FileNotFoundError: no `corpus/abc.zip` (the message names the command that downloads it).
        DataFormatError: not a readable zip, or no `abc/*.txt` file in it.
    """
    path = _require_file(Path(data_dir) / ABC_ZIP, "The ABC transcripts", "abc")
    texts = _read_zip_texts(path, lambda name: name.startswith("abc/") and name.endswith(".txt"), "abc/*.txt")
    return [" ".join(" ".join(block).split()) for text in texts.values() for block in _blocks(text)]


def load_webtext(data_dir):
    """Read the informal English of `corpus/webtext.zip` (NLTK's web text: a browser's bug
    reports, overheard conversations, two film scripts, personal ads, wine notes; 301k words).

    A document is a blank-line block of a file (an overheard conversation, a group of wine notes)
    cut into runs of at most `WEBTEXT_LINES_PER_DOCUMENT` lines: most files are one short item a
    line without blank lines, so a whole file would be one document of up to 87k words.

    Args:
        data_dir: the data folder.

    Returns:
        A list of str, one run of lines each (joined by spaces), in file-name and line order.

    Raises:
        FileNotFoundError: no `corpus/webtext.zip` (the message names the command that downloads it).
        DataFormatError: not a readable zip, or no `webtext/*.txt` file in it.
    """
    path = _require_file(Path(data_dir) / WEBTEXT_ZIP, "The web text corpus", "webtext")
    texts = _read_zip_texts(path, lambda name: name.startswith("webtext/") and name.endswith(".txt"), "webtext/*.txt")
    documents = []
    for text in texts.values():
        for block in _blocks(text):
            for start in range(0, len(block), WEBTEXT_LINES_PER_DOCUMENT):
                documents.append(" ".join(" ".join(block[start:start + WEBTEXT_LINES_PER_DOCUMENT]).split()))
    return documents


GENERAL_LOADERS = {"brown": load_brown, "abc": load_abc, "webtext": load_webtext}


def _joined(parts):
    """`(train, valid)` of several corpora, each already split, one after the other."""
    return [text for train, _ in parts for text in train], [text for _, valid in parts for text in valid]


def _hold_out(documents):
    train = [d for i, d in enumerate(documents) if i % HOLD_OUT_EVERY != HOLD_OUT_EVERY - 1]
    valid = [d for i, d in enumerate(documents) if i % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1]
    return train, valid


def load_corpus(data_dir, corpus):
    """Read an unlabelled pretraining corpus as `(train_texts, valid_texts)`.

    Args:
        data_dir: the data folder.
        corpus: one of `CORPORA`:
            "wikitext" (its train and valid splits);
            "movie_reviews" (every 20th review held out for validation);
            "sst2_unlabelled" (the SST-2 training sentences without their labels, every 20th held
            out; never the dev set, which fine-tuning reports on);
            "movie_reviews_and_sst2" (both: the most in-domain text for SST-2's dev sentences;
            the `cpu` profile's);
            "general" (general-domain English, 2.1M words: the Brown Corpus's 500 texts, ABC's
            news stories and web text's runs of lines, `load_brown`, `load_abc`, `load_webtext`,
            every 20th document of each held out);
            "movie_reviews_sst2_and_general" (the in-domain text of "movie_reviews_and_sst2",
            then the general text: for a model that holds up outside films).
            Where several sources are read, each is held out on its own, so that the validation
            texts draw from every source; the training texts come in the order named.
    """
    if corpus == "wikitext":
        return load_wikitext(data_dir, "train"), load_wikitext(data_dir, "valid")
    if corpus == "movie_reviews":
        return _hold_out(load_movie_reviews(data_dir))
    if corpus == "sst2_unlabelled":
        return _hold_out(load_sst2(data_dir, "train")[0])
    if corpus == "movie_reviews_and_sst2":
        return _joined([load_corpus(data_dir, "movie_reviews"), load_corpus(data_dir, "sst2_unlabelled")])
    if corpus == "general":
        return _joined([_hold_out(GENERAL_LOADERS[source](data_dir)) for source in GENERAL_SOURCES])
    if corpus == "movie_reviews_sst2_and_general":
        return _joined([load_corpus(data_dir, "movie_reviews_and_sst2"), load_corpus(data_dir, "general")])
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
    missing = [t for t in SPECIAL_TOKENS if t not in tokens]
    if missing:
        raise DataFormatError(f"{path}: the vocabulary lacks the special tokens {missing}.")
    if tokens[PAD_ID] != PAD:
        raise DataFormatError(f"{path}, line {PAD_ID + 1}: the first token must be {PAD} (id {PAD_ID}), got {tokens[PAD_ID]!r}.")
    return tokens


def _utf8_lines(raw, where):
    """Yield `(line_number, text)` for the lines of `raw` bytes; a line that is not UTF-8 is an error."""
    for line_number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            yield line_number, line.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as error:
            raise DataFormatError(
                f"{where}, line {line_number}: not UTF-8 text (byte {line[error.start]:#04x} at column "
                f"{error.start + 1})."
            ) from None


def hu_liu_label(tags):
    """The label of a Hu & Liu sentence from the tags before its `##`: 1, 0, or None for no label.

    Args:
        tags: the text before `##`, e.g. "battery[-2],screen[+1][u]".

    Returns:
        1 when the strengths of the `[+n]` and `[-n]` tags sum above 0, 0 below 0, None when there
        is no tag or they cancel out.

    Example:

    >>> hu_liu_label("battery[-2],screen[+1][u]"), hu_liu_label("price[+1]"), hu_liu_label("")
    (0, 1, None)
    """
    total = sum(int(strength) * (1 if sign == "+" else -1) for sign, strength in HU_LIU_OPINION_TAG.findall(tags))
    return None if total == 0 else int(total > 0)


def load_hu_liu_reviews(path):
    """Read the labelled sentences of a zip of Hu & Liu's annotated product reviews (KDD 2004).

    The zip is as NLTK's data index distributes it (`product_reviews_1.zip`, `product_reviews_2.zip`):
    one `.txt` file per product (a `README.txt` is skipped), one sentence a line after `##`,
    preceded by its opinion tags `feature[+n]` / `feature[-n]` (n the strength, 1-3). A sentence's
    label is the sign of the sum of its tags (`hu_liu_label`); sentences without tags, or whose
    tags cancel out, carry no label and are left out, as are lines without `##` (the header, the
    `[t]` review titles). The sentence is the rest of the line after the first `##`, stripped.

    Args:
        path: the zip file.

    Returns:
        `(sentences, labels)`: lists of str and int (0 negative, 1 positive), in member-name and
        line order.

    Raises:
        DataFormatError: not a zip, a line that is not UTF-8 (the message names the file, the
            member and the line), or no labelled sentence at all.
    """
    path = _require_file(path, "Hu & Liu product reviews")
    sentences, labels = [], []
    try:
        with zipfile.ZipFile(path) as archive:
            names = sorted(
                n for n in archive.namelist() if n.endswith(".txt") and Path(n).name.lower() != "readme.txt"
            )
            for name in names:
                for _, line in _utf8_lines(archive.read(name), f"{path} (member {name})"):
                    tags, mark, sentence = line.partition(HU_LIU_SENTENCE_MARK)
                    label = hu_liu_label(tags) if mark else None
                    if label is not None:
                        sentences.append(sentence.strip())
                        labels.append(label)
    except zipfile.BadZipFile as error:
        raise DataFormatError(f"{path}: not a readable zip archive ({error}).") from None
    if not sentences:
        raise DataFormatError(
            f"{path}: no labelled sentence (expected review .txt files with lines like "
            "'feature[+2]##A sentence.')."
        )
    return sentences, labels


def load_labelled_tsv(path):
    """Read labelled sentences from a `sentence<TAB>label` file (label 0 negative, 1 positive).

    A first line `sentence<TAB>label` is a header and skipped (as in SST-2's files); blank lines
    are skipped.

    Args:
        path: the `.tsv` file, UTF-8.

    Returns:
        `(sentences, labels)`: lists of str and int.

    Raises:
        DataFormatError: a line without exactly one tab, a label other than 0 or 1, a line that
            is not UTF-8, or no sentence at all; the message names the file and line.
    """
    path = _require_file(path, "Labelled sentences")
    sentences, labels = [], []
    for line_number, line in _utf8_lines(path.read_bytes(), str(path)):
        fields = line.split("\t")
        if not line.strip() or (line_number == 1 and fields == ["sentence", "label"]):
            continue
        sentence, label = _labelled_row(fields, path, line_number, shown=line[:200])
        sentences.append(sentence)
        labels.append(label)
    if not sentences:
        raise DataFormatError(f"{path}: no 'sentence<TAB>label' line.")
    return sentences, labels


def find_out_of_domain_sets(data_dir):
    """The out-of-domain sets in `data_dir/sentiment/` (`*.zip`, `*.tsv`), in name order; [] when none."""
    folder = Path(data_dir) / OUT_OF_DOMAIN_FOLDER
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in OUT_OF_DOMAIN_SUFFIXES and not p.name.startswith(".")
    )


def load_out_of_domain_sets(data_dir):
    """Read every out-of-domain set of the data folder: a zip as Hu & Liu's reviews, a .tsv as `sentence<TAB>label`.

    These sets are a check of how a model trained on films does elsewhere, zero-shot: never train
    or tune on them.

    Args:
        data_dir: the data folder.

    Returns:
        `{file name: (sentences, labels)}` in file-name order; `{}` when `sentiment/` holds none.
    """
    sets = {}
    for path in find_out_of_domain_sets(data_dir):
        load = load_hu_liu_reviews if path.suffix.lower() == ".zip" else load_labelled_tsv
        sets[path.name] = load(path)
    return sets

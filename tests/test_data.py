import hashlib
import re
from pathlib import Path

import pytest

from nbhelpers import synthetic
from nbhelpers.tokenization import SPECIAL_TOKENS
from nbhelpers.data import (
    DataFormatError,
    find_vocabulary,
    load_sst2,
    load_vocabulary,
    load_wikitext,
    resolve_data_dir,
)

ROOT = Path(__file__).resolve().parents[1]


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_load_sst2_reads_glue_tsv(tmp_path):
    _write(tmp_path / "sst2" / "train.tsv", 'sentence\tlabel\nit \'s a "gem" \t1\na bore \t0\n')
    sentences, labels = load_sst2(tmp_path, "train")
    assert sentences == ['it \'s a "gem" ', "a bore "] and labels == [1, 0]


@pytest.mark.parametrize(
    "body, line",
    [
        ("sentence\tlabel\ngood\t1\nbad\n", 3),  # a missing label
        ("sentence\tlabel\ngood\t1\nbad\t2\n", 3),  # a label other than 0/1
        ("sentence\tlabel\ngood\t1\tx\n", 2),  # an extra field
        ("text\tlabel\ngood\t1\n", 1),  # a wrong header
    ],
)
def test_malformed_sst2_rows_name_the_file_and_line(tmp_path, body, line):
    path = _write(tmp_path / "sst2" / "dev.tsv", body)
    with pytest.raises(DataFormatError, match=f"{path}, line {line}:"):
        load_sst2(tmp_path, "dev")


def test_missing_files_and_folders_say_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="sst2/train.tsv"):
        load_sst2(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="DATA_DIR .* is not a folder.*leave DATA_DIR empty"):
        resolve_data_dir(str(tmp_path / "nowhere"), tmp_path)
    with pytest.raises(ValueError, match="split must be one of"):
        load_sst2(tmp_path, "test")


def test_load_wikitext_keeps_lines_over_100_characters(tmp_path):
    paragraph = " The river " + "flows past the old town and on to the sea . " * 3
    _write(tmp_path / "wikitext" / "wiki.valid.raw", f"\n = Heading = \n\n{paragraph}\n short line .\n")
    assert load_wikitext(tmp_path, "valid") == [paragraph.strip()]
    _write(tmp_path / "wikitext" / "wiki.test.raw", " = Only a heading = \n")
    with pytest.raises(DataFormatError, match="no line is longer than 100"):
        load_wikitext(tmp_path, "test")


def test_vocabulary_checks(tmp_path, hand_vocabulary):
    with pytest.raises(FileNotFoundError, match="exactly one vocabulary file"):
        find_vocabulary(tmp_path)
    path = _write(tmp_path / "vocab" / "v.txt", "\n".join(hand_vocabulary) + "\n")
    assert find_vocabulary(tmp_path) == path
    assert load_vocabulary(path) == hand_vocabulary
    _write(path, "\n".join(t for t in hand_vocabulary if t != "[MASK]") + "\n")
    with pytest.raises(DataFormatError, match=r"lacks the special tokens \['\[MASK\]'\]"):
        load_vocabulary(path)
    _write(tmp_path / "vocab" / "w.txt", "x\n")
    with pytest.raises(FileNotFoundError, match=r"found \['v.txt', 'w.txt'\]"):
        find_vocabulary(tmp_path)


def _digest(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_synthetic_data_is_seeded_and_reads_through_the_real_loaders(tmp_path):
    small = {"sst2_train": 300, "sst2_dev": 50, "wiki_train": 40, "wiki_valid": 10, "wiki_test": 10}
    for name in ("a", "b"):
        synthetic.write_synthetic_data(tmp_path / name, seed=7, sizes=small, vocabulary_size=400)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    synthetic.write_synthetic_data(tmp_path / "c", seed=8, sizes=small, vocabulary_size=400)
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")

    sentences, labels = load_sst2(tmp_path / "a", "train")
    assert len(sentences) == 300 and 0.35 < sum(labels) / 300 < 0.65
    assert len(load_sst2(tmp_path / "a", "dev")[0]) == 50
    assert len(load_wikitext(tmp_path / "a", "train")) >= 40
    vocabulary = load_vocabulary(find_vocabulary(tmp_path / "a"))
    assert vocabulary[:5] == SPECIAL_TOKENS


def test_most_sentiment_words_are_never_labelled_and_every_one_is_in_the_corpus(tmp_path):
    # The property that makes the tiny profile's lesson work, on the data learners get (default
    # seed and sizes): the labelled training sentences show only a few sentiment words, the dev
    # sentences use the others too, and the unlabelled corpus uses each of them often enough to
    # learn it from, as a whole token of the vocabulary.
    synthetic.write_synthetic_data(tmp_path / "data", seed=synthetic.DEFAULT_SEED)
    coverage = synthetic.lexicon_coverage(tmp_path / "data")
    lexicon = synthetic.POSITIVE + synthetic.NEGATIVE
    negative, positive = synthetic.labelled_lexicon()
    assert sorted(coverage["labelled"]) == sorted(negative + positive)
    assert len(coverage["unlabelled"]) / len(lexicon) >= 0.8
    assert min(coverage["corpus_counts"][word] for word in coverage["unlabelled"]) >= 50
    dev_words = {w for s in load_sst2(tmp_path / "data", "dev")[0] for w in s.lower().split()}
    assert len(dev_words & set(coverage["unlabelled"])) >= 0.9 * len(coverage["unlabelled"])
    vocabulary = set(load_vocabulary(find_vocabulary(tmp_path / "data")))
    assert not [word for word in lexicon if word not in vocabulary]
    assert synthetic.lexicon_coverage(tmp_path / "data" / "sst2") is None  # not a synthetic data folder


def test_the_default_data_dir_is_generated_once(tmp_path, monkeypatch):
    calls = []
    real = synthetic.write_synthetic_data
    small = {"sst2_train": 20, "sst2_dev": 5, "wiki_train": 5, "wiki_valid": 2, "wiki_test": 2}
    monkeypatch.setattr(synthetic, "SIZES", small)
    monkeypatch.setattr(
        synthetic, "write_synthetic_data",
        lambda folder, seed: calls.append(folder) or real(folder, seed=seed, sizes=small, vocabulary_size=200),
    )
    first = resolve_data_dir("", tmp_path)
    second = resolve_data_dir("", tmp_path)
    assert first == second == (tmp_path / "data" / "synthetic").resolve()
    assert len(calls) == 1
    assert not [p for p in (tmp_path / "data").iterdir() if "staging" in p.name]


def test_load_corpus_reads_each_corpus_and_holds_out_a_validation_share(tmp_path):
    import zipfile

    from nbhelpers.data import load_corpus

    _write(tmp_path / "sst2" / "train.tsv", "sentence\tlabel\n" + "".join(f"line {i}\t1\n" for i in range(40)))
    with zipfile.ZipFile(_write(tmp_path / "corpus" / "movie_reviews.zip", "").parent / "movie_reviews.zip", "w") as z:
        for i in range(40):
            z.writestr(f"movie_reviews/{'pos' if i % 2 else 'neg'}/cv{i:03d}_1.txt", f"review {i} .\nsecond  line .\n")
        z.writestr("movie_reviews/README", "not a review")
    paragraph = "word " * 30
    _write(tmp_path / "wikitext-2" / "wiki.train.tokens", f" = Title = \n{paragraph}\n")
    _write(tmp_path / "wikitext-2" / "wiki.valid.tokens", f"{paragraph}\n")

    train, valid = load_corpus(tmp_path, "movie_reviews")
    assert (len(train), len(valid)) == (38, 2) and "review 0 . second line ." in train
    assert not set(train) & set(valid)
    train, valid = load_corpus(tmp_path, "sst2_unlabelled")
    assert (len(train), len(valid)) == (38, 2) and train[0] == "line 0"
    assert load_corpus(tmp_path, "wikitext") == ([paragraph.strip()], [paragraph.strip()])
    with pytest.raises(ValueError, match="movie_reviews"):
        load_corpus(tmp_path, "books")


def test_the_real_wikitext_files_read_in_their_tokenized_format(shared_data):
    paragraphs = load_wikitext(shared_data, "valid")
    assert 1000 < len(paragraphs) < 3760 and all(len(p) > 100 for p in paragraphs)
    assert not any(p.startswith("=") for p in paragraphs)


def test_the_real_movie_reviews_are_2000_reviews(shared_data):
    from nbhelpers.data import load_corpus

    train, valid = load_corpus(shared_data, "movie_reviews")
    assert (len(train), len(valid)) == (1900, 100)
    assert sum(len(r.split()) for r in train + valid) > 1_400_000


def test_sample_labelled_is_seeded_and_class_balanced():
    from nbhelpers.data import sample_labelled

    sentences = [f"s{i}" for i in range(1000)]
    labels = [int(i % 4 == 0) for i in range(1000)]  # 25 % positive
    chosen, chosen_labels = sample_labelled(sentences, labels, 100, seed=3)
    assert len(chosen) == 100 and sum(chosen_labels) == 50
    assert all(labels[int(s[1:])] == y for s, y in zip(chosen, chosen_labels))
    assert sample_labelled(sentences, labels, 100, seed=3) == (chosen, chosen_labels)
    assert sample_labelled(sentences, labels, 100, seed=4) != (chosen, chosen_labels)
    assert sample_labelled(sentences, labels, 0, seed=3) == (sentences, labels)


# The general-domain corpora (NLTK's brown.zip, abc.zip, webtext.zip). The fixtures below are small
# zips in the same layout, with sentences written for these tests.

def _write_zip(path, members):
    """A zip at `path` holding `members` (name -> str or bytes), members stored uncompressed."""
    import zipfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def _brown_zip(data_dir, texts=2):
    """`texts` Brown-format files (`brown/ca01`, ...) and the corpus's three files that are not text."""
    members = {"brown/README": "about this corpus\n", "brown/CONTENTS": "ca01 one/two\n", "brown/cats.txt": "ca01 news\n"}
    for i in range(texts):
        members[f"brown/c{'ab'[i % 2]}{i + 1:02d}"] = (
            f"\n\n\tThe/at kettle/nn-tl {i}/cd boiled/vbd ,/, and/or/cc ``/`` tea/nn ''/'' followed/vbd ./.\n"
            "\n\n\tNobody/pn complained/vbd ./.\n"
        )
    return _write_zip(data_dir / "corpus" / "brown.zip", members)


def _abc_zip(data_dir, stories=2):
    """`stories` stories in rural.txt (UTF-8, LF), one in science.txt (Latin-1, CRLF), a README."""
    rural = "\n\n".join(f"Rain returns to the valley {i}\nFarmers welcomed the rain.\nThe dams are full.\n"
                        for i in range(stories))
    science = "A probe lands on ice\r\nIt measured -180\xb0C at the surface.\r\n"
    return _write_zip(data_dir / "corpus" / "abc.zip", {
        "abc/README": "about\n", "abc/rural.txt": rural, "abc/science.txt": science.encode("latin-1")})


def _webtext_zip(data_dir, runs=45):
    """A file of `runs` one-line items without blank lines, a file of two blank-line blocks, a README."""
    items = "".join(f"Item {i}: the menu button does nothing\n" for i in range(runs))
    talk = "Tall man: Is this the queue?\nShort man: It was.\n\n\nWoman: Lovely weather.\n"
    return _write_zip(data_dir / "corpus" / "webtext.zip", {
        "webtext/README": "about\n", "webtext/bugs.txt": items, "webtext/talk.txt": talk})


def test_load_brown_strips_the_tags_and_reads_one_document_per_text(tmp_path):
    from nbhelpers.data import load_brown

    _brown_zip(tmp_path)
    assert load_brown(tmp_path) == [
        f'The kettle {i} boiled , and/or " tea " followed . Nobody complained .' for i in (0, 1)
    ]


def test_load_abc_reads_one_document_per_story_in_either_encoding(tmp_path):
    from nbhelpers.data import load_abc

    _abc_zip(tmp_path)
    assert load_abc(tmp_path) == [
        "Rain returns to the valley 0 Farmers welcomed the rain. The dams are full.",
        "Rain returns to the valley 1 Farmers welcomed the rain. The dams are full.",
        "A probe lands on ice It measured -180\u00b0C at the surface.",
    ]


def test_load_webtext_cuts_blocks_into_runs_of_lines(tmp_path):
    from nbhelpers.data import WEBTEXT_LINES_PER_DOCUMENT, load_webtext

    _webtext_zip(tmp_path, runs=2 * WEBTEXT_LINES_PER_DOCUMENT + 5)
    documents = load_webtext(tmp_path)
    # bugs.txt: 45 lines -> 20 + 20 + 5; talk.txt: its two blocks.
    assert [len(d.split(": ")) - 1 for d in documents] == [20, 20, 5, 2, 1]
    assert documents[2] == " ".join(f"Item {i}: the menu button does nothing" for i in range(40, 45))
    assert documents[3:] == ["Tall man: Is this the queue? Short man: It was.", "Woman: Lovely weather."]


@pytest.mark.parametrize("loader, name", [("load_brown", "brown"), ("load_abc", "abc"), ("load_webtext", "webtext")])
def test_a_missing_general_corpus_names_the_file_and_the_command_that_downloads_it(tmp_path, loader, name):
    from nbhelpers import data

    expected = f"{tmp_path / 'corpus' / name}.zip. `python -m nbhelpers.acquire --data-dir DATA_DIR {name}`"
    with pytest.raises(FileNotFoundError, match=re.escape(expected)):
        getattr(data, loader)(tmp_path)


@pytest.mark.parametrize("make, loader", [(_brown_zip, "load_brown"), (_abc_zip, "load_abc"), (_webtext_zip, "load_webtext")])
@pytest.mark.parametrize("damage", ["truncated", "a member's bytes changed", "no text member"])
def test_a_damaged_general_corpus_zip_is_one_error_naming_the_file(tmp_path, make, loader, damage):
    from nbhelpers import data

    path = make(tmp_path)
    raw = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
        message = "not a readable zip archive"
    elif damage == "a member's bytes changed":
        # Members are stored uncompressed: change one letter of a member's text; its CRC no longer matches.
        at = max(raw.find(word) for word in (b"kettle", b"valley", b"menu button"))
        path.write_bytes(raw[:at] + b"X" + raw[at + 1:])
        message = "not a readable zip archive"
    else:
        _write_zip(path, {"README": "nothing else here\n"})
        message = "holds no"
    with pytest.raises(DataFormatError, match=f"^{re.escape(str(path))}: {message}"):
        getattr(data, loader)(tmp_path)


def test_load_corpus_general_holds_out_every_source_and_follows_the_in_domain_text(tmp_path):
    from nbhelpers.data import CORPORA, HOLD_OUT_EVERY, load_abc, load_brown, load_corpus, load_webtext

    _brown_zip(tmp_path, texts=HOLD_OUT_EVERY)
    _abc_zip(tmp_path, stories=HOLD_OUT_EVERY)
    _webtext_zip(tmp_path, runs=HOLD_OUT_EVERY * 20)  # 20 runs of 20 lines, then talk.txt's 2 blocks
    sources = [load_brown(tmp_path), load_abc(tmp_path), load_webtext(tmp_path)]
    assert [len(s) for s in sources] == [20, 21, 22]

    train, valid = load_corpus(tmp_path, "general")
    # The 20th document of each source is held out: one Brown text, one ABC story, one web text run.
    assert valid == [sources[0][19], sources[1][19], sources[2][19]]
    assert train == sources[0][:19] + sources[1][:19] + sources[1][20:] + sources[2][:19] + sources[2][20:]

    _write(tmp_path / "sst2" / "train.tsv", "sentence\tlabel\n" + "".join(f"line {i}\t1\n" for i in range(40)))
    _write_zip(tmp_path / "corpus" / "movie_reviews.zip",
               {f"movie_reviews/pos/cv{i:03d}_1.txt": f"review {i} .\n" for i in range(20)})
    in_domain = load_corpus(tmp_path, "movie_reviews_and_sst2")
    assert load_corpus(tmp_path, "movie_reviews_sst2_and_general") == (in_domain[0] + train, in_domain[1] + valid)
    assert {"general", "movie_reviews_sst2_and_general"} <= set(CORPORA)


def test_notebook_02_lists_every_corpus_in_its_parameter_help():
    import nbformat

    from nbhelpers.data import CORPORA

    notebook = nbformat.read(ROOT / "notebooks" / "02_mlm_preprocessing.ipynb", as_version=4)
    parameters = next(c.source for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    help_line = next(line for line in parameters.splitlines() if line.startswith("CORPUS:")).split("#", 1)[1]
    assert [c for c in CORPORA if not re.search(rf"\b{c}\b", help_line)] == []


@pytest.fixture
def shared_general_corpora(shared_data):
    missing = [name for name in ("brown", "abc", "webtext") if not (shared_data / "corpus" / f"{name}.zip").is_file()]
    if missing:
        pytest.skip(f"the general corpora {missing} are not in {shared_data / 'corpus'} "
                    "(`python -m nbhelpers.acquire --data-dir DATA_DIR brown abc webtext` downloads them)")
    return shared_data


# A Brown tag left on a word would end it in `/` and one of the corpus's common tags.
BROWN_TAG_LEFT = re.compile(r"/(at|nn|nns|np|in|jj|vb|vbd|vbn|cc|rb|cd|pps|\.|,)(-tl|-hl)?$")


def test_the_real_general_corpora_read_as_plain_documents(shared_general_corpora):
    from nbhelpers.data import load_abc, load_brown, load_webtext

    brown, abc, webtext = (load(shared_general_corpora) for load in (load_brown, load_abc, load_webtext))
    # The data README's word counts: 1.18M, 664k, 301k (Brown's 1,161,192 tokens, punctuation included).
    for documents, count, words in ((brown, 500, 1_180_000), (abc, 3189, 664_000), (webtext, 3912, 301_000)):
        assert len(documents) == count
        assert abs(sum(len(d.split()) for d in documents) - words) < 0.02 * words
    assert not [t for d in brown for t in d.split() if BROWN_TAG_LEFT.search(t) or t in ("``", "''")]
    assert min(len(d.split()) for d in brown) > 1900  # every text is a ~2,000-word sample
    assert max(len(d.split()) for d in webtext) < 1000  # no whole file as one document

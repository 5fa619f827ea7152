import hashlib

import pytest

from nbhelpers import synthetic
from nbhelpers.data import (
    DataFormatError,
    find_vocabulary,
    load_sst2,
    load_vocabulary,
    load_wikitext,
    resolve_data_dir,
)


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
    assert vocabulary[:5] == synthetic.SPECIAL_TOKENS


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

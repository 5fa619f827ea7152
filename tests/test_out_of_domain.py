"""The out-of-domain check: its loaders, notebook 05's scoring and the model card's section.

Fixture files are built here from the project's own sentences, in the real formats; the real
product reviews are read only where the project's machines hold a copy.
"""

import io
import shutil
import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from nbhelpers.artifacts import publish_artifact, read_json, record_data_folder, stage_artifact
from nbhelpers.baseline import build_baseline_model, build_text_baseline, make_multi_hot_vectorizer
from nbhelpers.data import (
    DataFormatError,
    find_out_of_domain_sets,
    load_hu_liu_reviews,
    load_labelled_tsv,
    load_out_of_domain_sets,
    load_sst2,
)
from nbhelpers.export import EXPORTED_MEAN, build_text_model, predict_texts, write_model_card
from nbhelpers.models import build_classifier, build_encoder
from nbhelpers.out_of_domain import format_out_of_domain, score_out_of_domain
from nbhelpers.run import notebook_paths, run_series
from nbhelpers.tokenization import make_tokenizer
from conftest import printed


SHARED_SENTIMENT = Path(__file__).resolve().parents[2] / "shared" / "data" / "sentiment"

# One product's review file in Hu & Liu's format: a header, review titles, tagged and untagged lines.
KETTLE_REVIEWS = """\
*****************************************************************************
* Product name: a kettle
*****************************************************************************
[t]boils fast
spout[+2]##The spout pours without a drip.
lid[-3],handle[+1]##The lid rattles, though the handle stays cool.
##I bought it on a Tuesday.
switch[+1][u],base[-1]##The switch and the base are a wash.
price[+]##A strength-less tag counts for nothing.
[t]gave up after a month
element[-2][p] ##It stopped heating after four weeks.   \r
colour[+3][cc]##Nicer colour than my old one ## and quieter.
"""


def _write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def _hu_liu_zip(path, members):
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_hu_liu_reviews_label_each_sentence_by_the_sign_of_its_tags(tmp_path):
    path = _hu_liu_zip(tmp_path / "reviews.zip", {
        "reviews/README.txt": "spout[+3]##A readme line is never a sentence.\n",
        "reviews/kettle.txt": KETTLE_REVIEWS,
        "reviews/toaster.txt": "crumb tray[-1]##The crumb tray sticks.\n",
        "reviews/": "",
    })
    sentences, labels = load_hu_liu_reviews(path)
    assert sentences == [
        "The spout pours without a drip.",
        "The lid rattles, though the handle stays cool.",  # -3 + 1: negative
        "It stopped heating after four weeks.",
        "Nicer colour than my old one ## and quieter.",  # the rest of the line after the first ##
        "The crumb tray sticks.",
    ]
    assert labels == [1, 0, 0, 1, 0]


def test_a_line_that_is_not_utf8_names_the_zip_member_and_line(tmp_path):
    path = _hu_liu_zip(tmp_path / "reviews.zip", {"reviews/kettle.txt": b"spout[+2]##Fine.\nlid[-1]##Caf\xe9 lid.\n"})
    with pytest.raises(DataFormatError, match=rf"{path} \(member reviews/kettle.txt\), line 2: not UTF-8"):
        load_hu_liu_reviews(path)


def test_a_zip_without_labelled_sentences_or_not_a_zip_is_refused(tmp_path):
    untagged = _hu_liu_zip(tmp_path / "untagged.zip", {"reviews/kettle.txt": "##No tags at all.\n[t]title\n"})
    with pytest.raises(DataFormatError, match=f"{untagged}: no labelled sentence"):
        load_hu_liu_reviews(untagged)
    not_zip = _write(tmp_path / "notzip.zip", "spout[+2]##Plain text.\n")
    with pytest.raises(DataFormatError, match=f"{not_zip}: not a readable zip archive"):
        load_hu_liu_reviews(not_zip)


def test_a_tsv_reads_with_or_without_a_header(tmp_path):
    body = "The hinge squeaks.\t0\nSetup took a minute.\t1\r\n\n"
    assert load_labelled_tsv(_write(tmp_path / "a.tsv", body)) == (
        ["The hinge squeaks.", "Setup took a minute."], [0, 1])
    assert load_labelled_tsv(_write(tmp_path / "b.tsv", "sentence\tlabel\n" + body)) == (
        ["The hinge squeaks.", "Setup took a minute."], [0, 1])


@pytest.mark.parametrize("body, line, what", [
    ("Fine.\t1\nNo label at all\n", 2, "expected 'sentence<TAB>label'"),
    ("Fine.\t1\nA label of two.\t2\n", 2, "expected 'sentence<TAB>label'"),
    ("sentence\tlabel\nToo\tmany\t1\n", 2, "expected 'sentence<TAB>label'"),
    ("Fine.\tpositive\n", 1, "with label 0 or 1"),
    (b"Fine.\t1\nCaf\xe9.\t0\n", 2, "not UTF-8"),
])
def test_a_bad_tsv_line_names_the_file_and_line(tmp_path, body, line, what):
    path = _write(tmp_path / "mine.tsv", body)
    with pytest.raises(DataFormatError, match=rf"{path}, line {line}: .*{what}"):
        load_labelled_tsv(path)
    with pytest.raises(DataFormatError, match=f"{path}: no 'sentence<TAB>label' line"):
        load_labelled_tsv(_write(path, "sentence\tlabel\n"))


def test_the_data_folder_sets_are_every_zip_and_tsv_under_sentiment(tmp_path):
    assert find_out_of_domain_sets(tmp_path) == [] and load_out_of_domain_sets(tmp_path) == {}
    _write(tmp_path / "sentiment" / "README.md", "notes")
    _write(tmp_path / "sentiment" / ".half.tsv", "a hidden file\t1\n")
    _write(tmp_path / "sentiment" / "mine.tsv", "The hinge squeaks.\t0\n")
    _hu_liu_zip(tmp_path / "sentiment" / "kettle.zip", {"k/kettle.txt": KETTLE_REVIEWS})
    sets = load_out_of_domain_sets(tmp_path)
    assert list(sets) == ["kettle.zip", "mine.tsv"]
    assert sets["mine.tsv"] == (["The hinge squeaks."], [0]) and len(sets["kettle.zip"][0]) == 4


@pytest.mark.parametrize("number, labelled, positive", [(1, 1719, 1081), (2, 2067, 1334)])
def test_the_real_product_reviews_give_the_published_counts(number, labelled, positive):
    path = SHARED_SENTIMENT / f"product_reviews_{number}.zip"
    if not path.is_file():
        pytest.skip(f"{path} is not here (only on the project's machines; `python -m nbhelpers.acquire "
                    f"--data-dir DATA_DIR product_reviews_{number}` downloads it)")
    sentences, labels = load_hu_liu_reviews(path)
    assert (len(labels), sum(labels), len(labels) - sum(labels)) == (labelled, positive, labelled - positive)
    assert all(s.strip() == s and s for s in sentences)


# Sentences of two out-of-domain sets, and which of them the hand-set bag of words gets right.
KETTLE_TSV = [("A sturdy kettle.", 1), ("A flimsy lid.", 0), ("Sturdy, yet flimsy.", 1), ("It boils fast.", 1)]
BLENDER_REVIEWS = "motor[+2]##A sturdy motor.\njar[-3]##The jar feels flimsy.\n"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, hand_vocabulary):
    """A data folder with two out-of-domain sets and small real artifacts: notebook 01's raw-text bag
    of words (weights set by hand: "sturdy" positive, "flimsy" negative) and notebook 04's classifier."""
    root = tmp_path_factory.mktemp("out_of_domain")
    data_dir = root / "data"
    _write(data_dir / "sst2" / "dev.tsv", "sentence\tlabel\nthe film was good .\t1\nnot a good film\t0\n")
    _write(data_dir / "sentiment" / "kettle.tsv", "".join(f"{s}\t{y}\n" for s, y in KETTLE_TSV))
    _hu_liu_zip(data_dir / "sentiment" / "blender.zip", {"blender/blender.txt": BLENDER_REVIEWS})

    keras.utils.set_random_seed(0)
    vectorizer = make_multi_hot_vectorizer(["sturdy flimsy kettle lid motor jar"], max_tokens=20)
    words = vectorizer.get_vocabulary()
    baseline = build_baseline_model(len(words))
    kernel = np.zeros((len(words), 1), "float32")
    kernel[words.index("sturdy")], kernel[words.index("flimsy")] = 4.0, -4.0
    baseline.get_layer("sentiment").set_weights([kernel, np.zeros(1, "float32")])
    staging = stage_artifact(root, "01_baseline")  # published as notebook 01 does: with its manifest
    build_text_baseline(vectorizer, baseline).save(staging / "bag_of_words.keras")
    _write(staging / "config.json", json.dumps(record_data_folder(root, data_dir)))
    publish_artifact(staging)

    classifier = build_classifier(build_encoder(len(hand_vocabulary), 16, 1, 16, 2, 32, 0.0))
    staging = stage_artifact(root, "04_classifier")
    classifier.save(staging / "classifier.keras")
    _write(staging / "vocab.txt", "\n".join(hand_vocabulary) + "\n")
    _write(staging / "config.json", json.dumps({"data_folder": data_dir.name, "sequence_length": 16}))
    _write(staging / "metrics.json", "{}")
    publish_artifact(staging)
    transformer = build_text_model(make_tokenizer(hand_vocabulary, 16), classifier)
    transformer.save(root / "transformer.keras")
    return root


def test_the_raw_text_bag_of_words_gives_the_pipelines_probabilities_after_a_reload(tmp_path):
    keras.utils.set_random_seed(1)
    texts = ["A sturdy kettle.", "the lid, the LID!", "", "words it never saw"]
    vectorizer = make_multi_hot_vectorizer(["a sturdy kettle", "the lid is flimsy", "it boils"], max_tokens=8)
    baseline = build_baseline_model(vectorizer.vocabulary_size())
    build_text_baseline(vectorizer, baseline).save(tmp_path / "bag_of_words.keras")
    reloaded = keras.models.load_model(tmp_path / "bag_of_words.keras")
    expected = np.asarray(baseline(vectorizer(tf.constant(texts)))).reshape(-1)
    np.testing.assert_allclose(predict_texts(reloaded, texts), expected, atol=1e-6)


def _models(root):
    return {
        "transformer": keras.models.load_model(root / "transformer.keras"),
        "bag of words": keras.models.load_model(root / "01_baseline" / "bag_of_words.keras"),
    }


def test_the_scores_are_each_models_zero_shot_accuracy_per_set_and_pooled(artifacts):
    models = _models(artifacts)
    sets = load_out_of_domain_sets(artifacts / "data")
    scores = score_out_of_domain(models, sets)

    assert list(scores["sets"]) == ["blender.zip", "kettle.tsv"]
    blender, kettle, pooled = scores["sets"]["blender.zip"], scores["sets"]["kettle.tsv"], scores["all"]
    assert (blender["examples"], blender["positive"], blender["majority_class_accuracy"]) == (2, 1, 0.5)
    assert (kettle["examples"], kettle["positive"], kettle["majority_class_accuracy"]) == (4, 3, 0.75)
    assert (pooled["examples"], pooled["positive"]) == (6, 4)
    assert pooled["majority_class_accuracy"] == pytest.approx(4 / 6)
    # "sturdy" alone is positive, "flimsy" alone negative; both or neither give 0.5, called negative.
    assert blender["accuracy"]["bag of words"] == 1.0
    assert kettle["accuracy"]["bag of words"] == 0.5
    assert pooled["accuracy"]["bag of words"] == pytest.approx(4 / 6)
    sentences = sets["blender.zip"][0] + sets["kettle.tsv"][0]
    labels = np.asarray(sets["blender.zip"][1] + sets["kettle.tsv"][1], bool)
    expected = np.mean((predict_texts(models["transformer"], sentences) > 0.5) == labels)
    assert pooled["accuracy"]["transformer"] == pytest.approx(expected)
    json.dumps(scores)  # it goes into metrics.json as it is

    table = format_out_of_domain(scores).splitlines()
    assert table[0].split() == ["set", "sentences", "positive", "majority", "class", "transformer", "bag", "of", "words"]
    assert table[2].split()[:4] == ["kettle.tsv", "4", "75.0%", "0.750"] and table[2].split()[-1] == "0.500"
    with pytest.raises(ValueError, match="No out-of-domain set"):
        score_out_of_domain(models, {})


def test_the_model_card_says_how_it_does_outside_films_or_that_it_was_not_measured(artifacts, tmp_path):
    scores = score_out_of_domain(_models(artifacts), load_out_of_domain_sets(artifacts / "data"))
    config = {"sequence_length": 16, "vocabulary_size": 15}
    metrics = {"dev_accuracy": 0.5, "max_difference_vs_classifier": 0.0}
    write_model_card(tmp_path / "card.md", config, {**metrics, "out_of_domain": scores})
    card = (tmp_path / "card.md").read_text()
    section = card[card.index("## How it does outside films"):card.index("## Model\n")]
    transformer = scores["all"]["accuracy"]["transformer"]
    assert "| set | sentences | positive | majority class | transformer | bag of words |" in section
    assert "| blender.zip | 2 | 50.0% | 0.5000 | " in section and "| 1.0000 |" in section
    assert "| kettle.tsv | 4 | 75.0% | 0.7500 | " in section
    assert f"| all together | 6 | 66.7% | 0.6667 | {transformer:.4f} | 0.6667 |" in section

    write_model_card(tmp_path / "card.md", config, metrics)
    card = (tmp_path / "card.md").read_text()
    assert "## How it does outside films\nNot measured" in card and "product_reviews_1" in card


@pytest.mark.parametrize("ngrams, features", [
    (1, "which words occur"), (2, "which words and pairs of neighbouring words occur"),
    (3, "which words and runs of two or three neighbouring words occur"),
])
def test_the_model_card_says_what_the_averaged_bag_of_words_counts(tmp_path, ngrams, features):
    config = {"sequence_length": 16, "vocabulary_size": 15, "with_bag_of_words": True, "baseline_ngrams": ngrams}
    metrics = {"dev_accuracy": 0.8, "transformer_dev_accuracy": 0.7, "max_difference_vs_classifier": 0.0}
    write_model_card(tmp_path / "card.md", config, metrics)
    card = " ".join((tmp_path / "card.md").read_text().split())
    assert f"a bag of words' (logistic regression on {features}) trained on the same SST-2 labels" in card


def test_notebook_05_scores_the_sets_of_the_data_folder_into_metrics_and_card(artifacts):
    run_series(notebook_paths(only=["05"]), {}, artifacts)
    metrics = read_json(artifacts / "05_export" / "metrics.json")
    expected = score_out_of_domain(_models(artifacts), load_out_of_domain_sets(artifacts / "data"))
    assert metrics["out_of_domain"]["sets"].keys() == expected["sets"].keys()
    for name, summary in [*expected["sets"].items(), ("all", expected["all"])]:
        recorded = metrics["out_of_domain"]["sets"].get(name, metrics["out_of_domain"]["all"])
        assert recorded["accuracy"] == pytest.approx(summary["accuracy"], abs=1e-9)
        assert recorded["examples"] == summary["examples"] and recorded["positive"] == summary["positive"]
    card = (artifacts / "05_export" / "MODEL_CARD.md").read_text()
    assert f"| all together | 6 | 66.7% | 0.6667 | {expected['all']['accuracy']['transformer']:.4f} | 0.6667 |" in card
    executed = printed(artifacts / "05_export_raw_text.ipynb")
    assert "zero-shot accuracy on sentences from outside films" in executed


def test_notebook_05_with_the_bag_of_words_exports_the_mean_of_both_and_scores_all_three(artifacts, tmp_path):
    shutil.copytree(artifacts, tmp_path, dirs_exist_ok=True)  # the module's folder stays as the other tests expect
    run_series(notebook_paths(only=["05"]), {"WITH_BAG_OF_WORDS": True}, tmp_path)
    models = _models(tmp_path)
    exported = keras.models.load_model(tmp_path / "05_export" / "sentiment.keras")
    sets = load_out_of_domain_sets(tmp_path / "data")
    sentences = sets["blender.zip"][0] + sets["kettle.tsv"][0]
    labels = np.asarray(sets["blender.zip"][1] + sets["kettle.tsv"][1], bool)
    mean = (predict_texts(models["transformer"], sentences) + predict_texts(models["bag of words"], sentences)) / 2
    np.testing.assert_allclose(predict_texts(exported, sentences), mean, atol=1e-6)

    metrics = read_json(tmp_path / "05_export" / "metrics.json")
    assert metrics["with_bag_of_words"] is True and read_json(tmp_path / "05_export" / "config.json")["with_bag_of_words"]
    assert all(metrics["same_labels_as_classifier"].values()) and metrics["max_difference_vs_classifier"] <= 1e-3
    pooled = metrics["out_of_domain"]["all"]["accuracy"]
    assert set(pooled) == {"transformer", "bag of words", EXPORTED_MEAN}
    assert pooled[EXPORTED_MEAN] == pytest.approx(np.mean((mean > 0.5) == labels))
    dev_sentences, dev_labels = load_sst2(tmp_path / "data", "dev")
    dev_mean = (predict_texts(models["transformer"], dev_sentences) + predict_texts(models["bag of words"], dev_sentences)) / 2
    assert metrics["dev_accuracy"] == pytest.approx(np.mean((dev_mean > 0.5) == np.asarray(dev_labels, bool)))
    alone = np.mean((predict_texts(models["transformer"], dev_sentences) > 0.5) == np.asarray(dev_labels, bool))
    assert metrics["transformer_dev_accuracy"] == pytest.approx(alone)
    card = (tmp_path / "05_export" / "MODEL_CARD.md").read_text()
    assert "the mean of the transformer's and of a bag of words'" in card
    assert f"| SST-2 dev accuracy, the transformer alone | {alone:.4f} |" in card
    assert "exported vs the in-notebook classifier and bag of words, averaged (dev set)" in card
    assert f"| majority class | transformer | bag of words | {EXPORTED_MEAN} |" in card
    assert f"*{EXPORTED_MEAN}* this model" in card


def test_the_command_line_scores_saved_models_on_a_data_folder(artifacts, tmp_path):
    from nbhelpers.out_of_domain import main

    out = io.StringIO()
    main(["--data-dir", str(artifacts / "data"), "--json", str(tmp_path / "scores.json"),
          f"bag of words={artifacts / '01_baseline' / 'bag_of_words.keras'}", str(artifacts / "transformer.keras")],
         stdout=out)
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert list(scores["all"]["accuracy"]) == ["bag of words", str(artifacts / "transformer.keras")]
    assert scores["all"]["accuracy"]["bag of words"] == pytest.approx(4 / 6)
    assert out.getvalue() == format_out_of_domain(scores) + "\n"
    with pytest.raises(SystemExit, match=f"No out-of-domain set in {tmp_path}/sentiment/"):
        main(["--data-dir", str(tmp_path), str(artifacts / "transformer.keras")])


def test_a_bag_of_words_saved_under_jax_reads_raw_strings_under_tensorflow(run_under_backend, tmp_path):
    # `KERAS_BACKEND=jax` runs notebook 01 on JAX; notebook 05 loads its bag of words on TensorFlow.
    save = """
import json, sys, keras, numpy as np
from nbhelpers.baseline import build_baseline_model, build_text_baseline, make_multi_hot_vectorizer
keras.utils.set_random_seed(2)
vectorizer = make_multi_hot_vectorizer(["a sturdy kettle", "a flimsy lid"], max_tokens=8)
baseline = build_baseline_model(vectorizer.vocabulary_size())
build_text_baseline(vectorizer, baseline).save(sys.argv[1])
multi_hot = np.asarray(vectorizer(["a sturdy kettle", "flimsy"]))
print(json.dumps({"backend": keras.backend.backend(), "expected": np.asarray(baseline(multi_hot)).ravel().tolist()}))
"""
    load = """
import json, sys, keras
from nbhelpers.export import predict_texts
model = keras.models.load_model(sys.argv[1])
print(json.dumps({"backend": keras.backend.backend(), "got": predict_texts(model, ["a sturdy kettle", "flimsy"]).tolist()}))
"""
    saved = run_under_backend(save, "jax", tmp_path / "bag_of_words.keras")
    loaded = run_under_backend(load, "tensorflow", tmp_path / "bag_of_words.keras")
    assert (saved["backend"], loaded["backend"]) == ("jax", "tensorflow")
    np.testing.assert_allclose(loaded["got"], saved["expected"], atol=1e-6)

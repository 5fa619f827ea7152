"""The exported model as a product: the command-line predictor and the bad inputs it must survive."""

import io
import json
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from nbhelpers.export import build_text_model, export_saved_model, load_text_model, predict_texts
from nbhelpers.models import build_classifier, build_encoder
from nbhelpers.predict import main
from nbhelpers.tokenization import make_tokenizer

BAD_INPUTS = [
    "",
    "   \t  ",
    "wonderful " * 10_000,  # 100,000 characters: truncated to the sequence length
    "🎬🍿 loved it 😍👍",
    "这部电影很好看",
    "Un café très élégant, naïve et déjà vu",
    "a " + "x" * 500 + " word longer than WordPiece allows",
]


@pytest.fixture(scope="module")
def model_files(tmp_path_factory, hand_vocabulary):
    folder = tmp_path_factory.mktemp("export")
    keras.utils.set_random_seed(0)
    encoder = build_encoder(len(hand_vocabulary), 16, 1, 16, 2, 32, 0.0)
    model = build_text_model(make_tokenizer(hand_vocabulary, 16), build_classifier(encoder))
    model.save(folder / "sentiment.keras")
    export_saved_model(model, folder / "saved_model")
    return folder


def _run(argv, stdin_bytes=b""):
    out = io.StringIO()
    main(argv, stdin=io.BytesIO(stdin_bytes), stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_every_bad_input_gets_a_valid_probability(model_files):
    records = _run([str(model_files / "sentiment.keras"), *BAD_INPUTS])
    assert [r["text"] for r in records] == BAD_INPUTS
    for record in records:
        assert 0.0 <= record["probability"] <= 1.0 and record["label"] in ("positive", "negative")


def test_the_savedmodel_gives_the_same_probabilities_as_the_keras_file(model_files):
    texts = ["the film was good", "not good", *BAD_INPUTS]
    keras_probabilities = predict_texts(load_text_model(model_files / "sentiment.keras"), texts)
    saved = predict_texts(tf.saved_model.load(str(model_files / "saved_model")), texts)
    np.testing.assert_allclose(saved, keras_probabilities, atol=1e-6)


def test_stdin_lines_with_invalid_utf8_are_all_answered_in_order(model_files):
    stdin = b"the film was good\n\n\xff\xfe broken \xc3 bytes\n" + "café\n".encode() + b"last line without newline"
    records = _run([str(model_files / "saved_model")], stdin)
    assert [r["text"] for r in records] == [
        "the film was good", "", "\ufffd\ufffd broken \ufffd bytes", "café", "last line without newline",
    ]
    assert all(0.0 <= r["probability"] <= 1.0 for r in records)


def test_a_10000_line_file_in_one_run(model_files, tmp_path):
    lines = [f"the film was {'good' if i % 2 else 'bad'} number {i}" for i in range(10_000)]
    path = tmp_path / "reviews.txt"
    path.write_text("\n".join(lines) + "\n")
    records = _run([str(model_files / "sentiment.keras"), "--file", str(path)])
    assert len(records) == 10_000 and records[-1]["text"] == lines[-1]


def test_the_command_runs_as_a_process_and_reports_a_missing_model(model_files, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "nbhelpers.predict", str(model_files / "sentiment.keras")],
        input=b"a good film\n\xff\n", capture_output=True, check=True, timeout=120,
    )
    records = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [r["text"] for r in records] == ["a good film", "\ufffd"]
    missing = subprocess.run(
        [sys.executable, "-m", "nbhelpers.predict", str(tmp_path / "nope.keras"), "x"],
        capture_output=True, timeout=120,
    )
    assert missing.returncode != 0 and b"not found" in missing.stderr


def test_the_savedmodel_names_its_output_probability(model_files):
    served = tf.saved_model.load(str(model_files / "saved_model"))
    assert list(served.signatures["serving_default"].structured_outputs) == ["probability"]
    assert set(served.serve(tf.constant(["the film was good"]))) == {"probability"}


def test_a_text_model_on_a_list_input_classifier_calls_without_warnings(hand_vocabulary, tmp_path):
    # Notebook 04 once saved its classifier as keras.Model(classifier.inputs, ...): a list of one
    # input, which Keras warned about on every call of the text model built around it.
    keras.utils.set_random_seed(0)
    classifier = build_classifier(build_encoder(len(hand_vocabulary), 16, 1, 16, 2, 32, 0.0))
    listed = keras.Model(classifier.inputs, classifier.outputs)
    build_text_model(make_tokenizer(hand_vocabulary, 16), listed).save(tmp_path / "sentiment.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probabilities = load_text_model(tmp_path / "sentiment.keras")(tf.constant(["the film was good", "bad", ""]))
    assert tuple(probabilities.shape) == (3, 1)

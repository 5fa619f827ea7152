"""The speed benchmark runs end to end (a smoke test: its timings are read by people, not asserted)."""

import importlib.util
import json
import os
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from nbhelpers.artifacts import publish_artifact, stage_artifact
from nbhelpers.baseline import build_baseline_model, build_text_baseline, make_multi_hot_vectorizer
from nbhelpers.cli import UserError
from nbhelpers.models import build_classifier, build_encoder, pretrainer_from_config
from nbhelpers.batches import classification_dataset
from nbhelpers.tokenization import make_tokenizer, tokenize_texts
from nbhelpers.training import compile_classifier, finetuning_optimizer, set_seed

BENCH = Path(__file__).resolve().parents[1] / "bench" / "speed.py"


def _load(script):
    """A script under bench/ as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location(Path(script).stem, BENCH.with_name(script))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def speed():
    return _load("speed.py")


def test_the_benchmark_runs_and_reports_both_sides(speed, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the synthetic data is generated under ./artifacts
    out = tmp_path / "speed.json"
    speed.main(["--warmup-steps", "1", "--pretrain-steps", "2", "--pretrain-rounds", "1", "--finetune-examples", "128",
                "--finetune-epochs", "1", "--chunks", "2", "--out", str(out)])
    results = json.loads(out.read_text())
    assert results["machine"]["cpu"]  # ratios differ between CPUs: the record names its own
    usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count())
    assert results["machine"]["cores"] == len(usable)  # cores, not TensorFlow's one CPU device
    pretraining, finetuning = results["pretraining"], results["finetuning"]
    # Our side ran on both backends (JAX in a child process) from the guide's initial weights.
    assert set(pretraining["ours"]) == set(finetuning["ours"]) == {"jax", "tensorflow"}
    for backend, ours in pretraining["ours"].items():
        # Packing leaves (almost) no padding; the guide's truncate-and-pad leaves plenty.
        assert ours["useful_share"] > 0.99 > pretraining["guide"]["useful_share"]
        assert pretraining["useful_tokens_per_second_ratio"][backend] > 0
    for side in (finetuning["guide"], *finetuning["ours"].values()):
        assert len(side["dev_accuracy"]) == 1 and 0 <= side["dev_accuracy"][0] <= 1
        assert side["compile_seconds"] > 0 and side["batch_shapes"] >= 1
    assert finetuning["guide"]["batch_shapes"] <= 2  # padded to 128 (the last batch may be smaller)
    assert all(ours["batch_shapes"] > 2 for ours in finetuning["ours"].values())  # bucketed
    # The sides took turns on the machine, never two at once.
    turns = sorted((start, end, side) for side, spans in results["turns"].items() for start, end in spans)
    assert {side for _, _, side in turns} == {"guide", "ours (jax)", "ours (tensorflow)"}
    assert all(end <= next_start for (_, end, _), (next_start, _, _) in zip(turns, turns[1:]))
    guide_spans = results["turns"]["guide"]
    for side in ("ours (jax)", "ours (tensorflow)"):  # each ran while the guide was still at work
        assert any(guide_spans[0][1] <= start < guide_spans[-1][0] for start, _ in results["turns"][side])


def test_the_benchmark_refuses_unknown_backends(speed, capsys):
    with pytest.raises(SystemExit):
        speed.main(["--ours-backends", "jax,theano"])
    assert "--ours-backends: give one or more of jax, tensorflow" in capsys.readouterr().err


def test_the_pretraining_recipe_comparison_runs_and_records_curves(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipes = _load("pretrain_recipes.py")
    out = tmp_path / "recipes.json"
    # The guide's recipe and ours: the third recipe only mixes their settings.
    recipes.main(["--minutes", "0.02", "--evaluations", "2", "--vocabulary-size", "500", "--calibration-steps", "2",
                  "--recipes", "guide", "ours", "--out", str(out)])
    record = json.loads(out.read_text())
    assert record["machine"]["cores"] >= 1 and record["machine"]["cpu"]  # described as bench/speed.py does
    assert set(record["results"]) == {"the guide's recipe", "ours (cpu profile)"}
    for result in record["results"].values():
        assert len(result["minutes"]) == len(result["val_mlm_accuracy"]) == len(result["val_known_token_accuracy"]) == 2
        assert result["steps"] >= 2 and 0 < result["useful_token_share"] <= 1
    packed = record["results"]["ours (cpu profile)"]
    assert packed["useful_token_share"] > 0.95 > record["results"]["the guide's recipe"]["useful_token_share"]
    assert out.with_suffix(".png").is_file()


@pytest.fixture
def small_encoder_artifacts(tmp_path, hand_vocabulary):
    """Notebook 03's artifact for a one-block encoder over the hand vocabulary, and a data folder with
    a few SST-2 sentences and one out-of-domain set: `(artifacts folder, data folder)`."""
    rows = [("the film was good .", 1), ("the film was bad .", 0), ("a good film", 1), ("not a good film .", 0)] * 3
    data_dir = tmp_path / "data"
    for path, lines in [("sst2/train.tsv", rows), ("sst2/dev.tsv", rows[:4]),
                        ("sentiment/cafes.tsv", [("the cafe was good .", 1), ("the cafes were bad .", 0)])]:
        (data_dir / path).parent.mkdir(parents=True, exist_ok=True)
        (data_dir / path).write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in lines))
    config = {"precision": "float32", "sequence_length": 16, "num_layers": 1, "model_dim": 16, "num_heads": 2,
              "intermediate_dim": 32, "dropout": 0.0, "predictions_per_sequence": 4, "corpus": "hand-written"}
    keras.utils.set_random_seed(0)
    pretrainer = pretrainer_from_config(config, len(hand_vocabulary))
    staging = stage_artifact(tmp_path / "artifacts", "03_encoder")
    pretrainer.get_layer("encoder").save(staging / "encoder.keras")
    pretrainer.save_weights(staging / "mlm.weights.h5")
    (staging / "vocab.txt").write_text("\n".join(hand_vocabulary) + "\n")
    (staging / "config.json").write_text(json.dumps(config))
    publish_artifact(staging)
    # Notebook 01's raw-text bag of words, set by hand so that it is right and sure of every sentence
    # here: averaged with any transformer, it decides each label.
    vectorizer = make_multi_hot_vectorizer([s for s, _ in rows] + ["the cafes were bad"], max_tokens=30)
    words = vectorizer.get_vocabulary()
    baseline = build_baseline_model(len(words))
    kernel = np.zeros((len(words), 1), "float32")
    for word, weight in (("good", 20.0), ("bad", -20.0), ("not", -40.0)):
        kernel[words.index(word)] = weight
    baseline.set_weights([kernel, np.zeros(1, "float32")])
    staging = stage_artifact(tmp_path / "artifacts", "01_baseline")
    build_text_baseline(vectorizer, baseline).save(staging / "bag_of_words.keras")
    (staging / "config.json").write_text("{}")
    publish_artifact(staging)
    return tmp_path / "artifacts", data_dir


@pytest.mark.parametrize("cloze", [False, True], ids=["pooled head", "cloze"])
def test_the_out_of_domain_comparison_fine_tunes_and_scores_both_sets(small_encoder_artifacts, tmp_path, cloze):
    artifacts, data_dir = small_encoder_artifacts
    recipes = _load("out_of_domain_recipes.py")
    out = tmp_path / "results" / "recipes"
    # A cloze, or the pooled head also scored averaged with notebook 01's bag of words.
    prompt = ["--prompt", "the film was [MASK] .", "--label-words", "bad,good"] if cloze else ["--with-bag-of-words"]
    recipes.main(["--artifacts", str(artifacts), "--data-dir", str(data_dir), "--recipes", "plain", "--seeds", "1",
                  "--profile", "tiny", "--set", "FINETUNE_EPOCHS=1", "FINETUNE_LEARNING_RATE=0.001", *prompt,
                  "--out", str(out)])
    record = json.loads(out.with_suffix(".json").read_text())
    assert (record["settings"]["FINETUNE_EPOCHS"], record["settings"]["FINETUNE_LEARNING_RATE"]) == (1, 1e-3)
    assert record["prompt"] == ("the film was [MASK] . (bad,good)" if cloze else None)
    # "plain", and "averaged" read out of the same fit; each scored on SST-2 dev and the set.
    alone = [("plain", 1), ("averaged", 1)]
    with_bag_of_words = [("plain", 1), ("plain+bag_of_words", 1), ("averaged", 1), ("averaged+bag_of_words", 1)]
    assert [(run["recipe"], run["seed"]) for run in record["runs"]] == (alone if cloze else with_bag_of_words)
    for run in record["runs"]:
        assert 0 <= run["sst2_dev"] <= 1 and list(run["out_of_domain_sets"]) == ["cafes.tsv"]
        assert run["out_of_domain"] in (0.0, 0.5, 1.0) and run["majority_class"] == 0.5
        if run["recipe"].endswith("+bag_of_words"):  # the sure bag of words decides every mean: all right
            fit = run["recipe"].removesuffix("+bag_of_words")
            assert (run["sst2_dev"], run["out_of_domain"], run["read_out_of_the_fit_of"]) == (1.0, 1.0, fit)
    assert "| plain | 1 |" in out.with_suffix(".md").read_text()


def test_a_soup_scores_the_mean_of_the_seeds_weights(small_encoder_artifacts, tmp_path):
    artifacts, data_dir = small_encoder_artifacts
    recipes = _load("out_of_domain_recipes.py")
    with pytest.raises(UserError, match="two or more --seeds"):
        recipes.main(["--artifacts", str(artifacts), "--soup", "--seeds", "1", "--out", str(tmp_path / "recipes")])
    classifier = build_classifier(keras.models.load_model(artifacts / "03_encoder" / "encoder.keras"))
    first = [keras.ops.convert_to_numpy(v).copy() for v in classifier.weights]
    tokenizer = make_tokenizer(artifacts / "03_encoder" / "vocab.txt", 16)
    sentences, labels = ["the film was good .", "the film was bad ."], [1, 0]
    data = (tokenizer, None, None, tokenize_texts(tokenizer, sentences), np.array(labels), {"films": (sentences, labels)})
    members = recipes.SoupMembers({"plain": [first, [w + 1 for w in first]], "averaged": [first]}, classifier)
    runs = recipes.score_soups(members, [1, 2], data, {"FINETUNE_BATCH_SIZE": 2, "BUCKETED": False})
    assert [(run["recipe"], run["seed"], run["read_out_of_the_fit_of"]) for run in runs] == [("plain+soup", [1, 2], "plain")]
    for variable, start in zip(classifier.weights, first):  # halfway between the two fits
        np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), start + 0.5, rtol=1e-6)
    # End to end: two fits, then their soups.
    out = tmp_path / "soup"
    recipes.main(["--artifacts", str(artifacts), "--data-dir", str(data_dir), "--recipes", "plain", "--seeds", "1", "2",
                  "--soup", "--profile", "tiny", "--set", "FINETUNE_EPOCHS=1", "--out", str(out)])
    record = json.loads(out.with_suffix(".json").read_text())
    assert [run["recipe"] for run in record["runs"]][-2:] == ["plain+soup", "averaged+soup"]


@pytest.mark.parametrize("setting, message", [
    ("FINETUNE_EPOCH=3", "NAME one of FINETUNE_BATCH_SIZE"), ("FINETUNE_EPOCHS=many", "FINETUNE_EPOCHS = 'many' has type str; it must be a int"),
    ("FINETUNE_LEARNING_RATE=fast", "it must be a float"), ("BUCKETED=1", "it must be a bool"),
])
def test_the_out_of_domain_comparison_refuses_a_setting_it_cannot_use(small_encoder_artifacts, tmp_path, setting,
                                                                      message):
    artifacts, data_dir = small_encoder_artifacts
    recipes = _load("out_of_domain_recipes.py")
    with pytest.raises(UserError, match=message):
        recipes.main(["--artifacts", str(artifacts), "--data-dir", str(data_dir), "--set", setting,
                      "--out", str(tmp_path / "recipes")])


def test_the_out_of_domain_comparison_refuses_a_linear_probe_for_a_cloze(small_encoder_artifacts, tmp_path):
    artifacts, data_dir = small_encoder_artifacts
    with pytest.raises(UserError, match="--with-bag-of-words with --prompt"):
        _load("out_of_domain_recipes.py").main(["--artifacts", str(artifacts), "--with-bag-of-words", "--prompt",
                                                "the film was [MASK] .", "--out", str(tmp_path / "recipes")])
    with pytest.raises(UserError, match="a cloze has no pooled head"):
        _load("out_of_domain_recipes.py").main(["--artifacts", str(artifacts), "--data-dir", str(data_dir),
                                                "--recipes", "lp_ft", "--prompt", "the film was [MASK] .",
                                                "--out", str(tmp_path / "recipes")])


def test_compiling_every_shape_first_changes_nothing_in_the_training(speed):
    """The bench's warm-up trains on one batch per shape, then puts weights and optimizer state back."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 40, 96)
    tokens = np.where(np.arange(40) < lengths[:, None], rng.integers(5, 50, (96, 40)), 0)
    labels = rng.integers(0, 2, 96)

    def trained(warm_up_first):
        set_seed(0)
        encoder = build_encoder(50, 40, 1, 8, 2, 16, 0.0)
        model = compile_classifier(build_classifier(encoder), finetuning_optimizer(1e-3))
        data = classification_dataset(tokens, labels, 8, shuffle_seed=0, bucketed=True)
        if warm_up_first:
            seconds, shapes = speed.compile_every_shape(model, data, speed.Turns())
            assert seconds > 0 and shapes > 2
            assert int(model.optimizer.iterations) == 0
        else:
            for _ in data:  # the warm-up reads the data once, which moves tf.data's seeded reshuffling on
                pass
        model.fit(data, epochs=2, verbose=0, shuffle=False)
        return model.get_weights()

    for with_warm_up, without in zip(trained(True), trained(False)):
        np.testing.assert_allclose(with_warm_up, without, rtol=1e-5, atol=1e-6)


def test_a_pretraining_round_is_timed_from_its_first_step_to_its_last(speed):
    """Time spent before the first step or after the last (a `tf.data` iterator's end) is left out."""


    class Slow(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            time.sleep(2.0)

        def on_train_batch_begin(self, batch, logs=None):
            time.sleep(0.1)

        def on_train_end(self, logs=None):
            time.sleep(2.0)

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    span = speed._StepSpan(speed.Turns())
    model.fit(np.zeros((8, 2)), np.zeros(8), batch_size=2, callbacks=[Slow(), span], verbose=0)
    # Inside: three of the 0.1 s sleeps (the first comes before the span starts) and four steps.
    assert 0.3 <= span.end - span.start < 2.0

"""The label-budget curve: samples, validation splits, epochs, and a small curve end to end."""

import random

import numpy as np
import pytest

from nbhelpers.label_budget import (
    ARMS, CurveSettings, LabelledSplits, TransformerArm, epochs_for, fine_tune_transformer, label_budget_curve,
    parse_budgets, split_validation, summarize,
)
from nbhelpers.models import build_classifier, build_encoder
from nbhelpers.synthetic import sentiment_example
from nbhelpers.tokenization import compute_vocabulary, make_tokenizer, tokenize_texts
from nbhelpers.training import set_seed


def test_budgets_parse_and_bad_ones_say_what_to_write():
    assert parse_budgets("4000, 250,1000") == [250, 1000, 4000]
    assert parse_budgets("") == []
    for bad in ("250;1000", "all", "2", "-5"):
        with pytest.raises(ValueError, match="CURVE_BUDGETS .*label counts of at least 4"):
            parse_budgets(bad)


def test_the_validation_split_is_a_seeded_class_balanced_fifth():
    labels = [0] * 60 + [1] * 40
    indices = list(range(0, 100, 2)) + [1, 3]
    train, validation = split_validation(indices, labels, seed=3)
    assert sorted(train + validation) == sorted(indices) and not set(train) & set(validation)
    assert len(validation) == round(0.2 * 30) + round(0.2 * 22)  # a fifth of each class
    assert split_validation(indices, labels, seed=3) == (train, validation)
    assert split_validation(indices, labels, seed=4) != (train, validation)


def test_small_budgets_get_more_epochs_up_to_the_cap():
    settings = CurveSettings(batch_size=32, learning_rate=1e-4, baseline_max_tokens=100, min_steps=300, max_epochs=30)
    assert epochs_for(3200, settings) == 3 and epochs_for(800, settings) == 12 and epochs_for(100, settings) == 30
    assert epochs_for(100_000, settings) == 1


def _sentiment_data(count, seed):
    rng = random.Random(seed)
    sentences, labels = zip(*(sentiment_example(rng) for _ in range(count)))
    return list(sentences), list(labels)


def test_a_small_curve_has_every_arm_budget_and_seed(tmp_path):
    sentences, labels = _sentiment_data(400, seed=0)
    dev_sentences, dev_labels = _sentiment_data(100, seed=1)
    tokenizer = make_tokenizer(compute_vocabulary(sentences, 300), 16)
    labelled = LabelledSplits(sentences, labels, dev_sentences, dev_labels)
    settings = CurveSettings(batch_size=16, learning_rate=1e-3, baseline_max_tokens=200, min_steps=10, max_epochs=4,
                             patience=1)

    def new_classifier():
        return build_classifier(build_encoder(tokenizer.vocabulary_size(), 16, num_layers=1, model_dim=8, num_heads=2,
                                              intermediate_dim=16, dropout=0.0))

    arm = TransformerArm(new_classifier, tokenize_texts(tokenizer, sentences), tokenize_texts(tokenizer, dev_sentences))
    lines = []
    curve = label_budget_curve(labelled, {ARMS[1]: arm}, [40], [0, 1], settings, log=lines.append)
    assert set(curve["accuracy"]) == {ARMS[0], ARMS[1]}
    for arm in curve["accuracy"]:
        assert set(curve["accuracy"][arm]) == {"40"}
        assert all(len(v) == 2 and all(0 <= a <= 1 for a in v) for v in curve["accuracy"][arm].values())
        assert all(1 <= e <= 4 for v in curve["best_epoch"][arm].values() for e in v)
        assert all(0 <= a <= 1 for v in curve["validation_accuracy"][arm].values() for a in v)
    assert len(lines) == 2 * 2 and "40 labels  seed 0" in lines[0]
    mean, spread = summarize(curve["accuracy"])[ARMS[0]]["40"]
    assert mean == pytest.approx(np.mean(curve["accuracy"][ARMS[0]]["40"])) and spread >= 0


def test_a_frozen_embedding_stays_as_it_starts_and_the_rest_trains():
    sentences, labels = _sentiment_data(120, seed=2)
    tokenizer = make_tokenizer(compute_vocabulary(sentences, 200), 16)
    tokens = tokenize_texts(tokenizer, sentences)
    labelled = LabelledSplits(sentences, labels, sentences[:20], labels[:20])
    built = []

    def new_classifier():
        built.append(build_classifier(build_encoder(tokenizer.vocabulary_size(), 16, num_layers=1, model_dim=8,
                                                    num_heads=2, intermediate_dim=16, dropout=0.0)))
        return built[-1]

    def weights(model):
        return (np.array(model.get_layer("encoder").get_layer("embedding").token_embedding.embeddings),
                np.array(model.get_layer("sentiment").kernel))

    arm = TransformerArm(new_classifier, tokens, tokens[:20])
    train, validation = split_validation(list(range(100)), labels, seed=0)
    set_seed(0)
    start_table, start_head = weights(new_classifier())  # the run starts from the same seeded weights
    for freeze in (True, False):
        settings = CurveSettings(batch_size=16, learning_rate=1e-2, baseline_max_tokens=200, min_steps=5, max_epochs=2,
                                 freeze_embedding=freeze)
        fine_tune_transformer(arm, labelled, train, validation, seed=0, settings=settings)
        table, head = weights(built[-1])
        assert np.array_equal(table, start_table) is freeze
        assert not np.array_equal(head, start_head)

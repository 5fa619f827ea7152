"""bench/benchlib.py: the guide's encoder variant, the logits head, ELECTRA's replaced-token detection
(its corruption and labels, training, resuming, and its bench) and `shuffled_passes`."""

import importlib.util
import json
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from nbhelpers.masking import SelfMaskingMLM
from nbhelpers.models import EMBEDDING_LAYER, build_encoder, build_pretraining_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))  # bench/ is no package: its scripts import benchlib from beside them
from benchlib import (  # noqa: E402
    ReplacedTokenDetection, logits_pretraining_model, rewire_encoder, shuffled_passes,
)

MASK_ID = 4
UNSELECTABLE = (0, 2, 3)  # [PAD], [CLS], [SEP]


def tiny_model(seed=1, vocabulary=60, length=16):
    encoder = build_encoder(vocabulary, length, num_layers=1, model_dim=16, num_heads=2, intermediate_dim=32,
                            dropout=0.0, normalize_first=True)
    generator = rewire_encoder(
        build_encoder(vocabulary, length, num_layers=1, model_dim=16, num_heads=2, intermediate_dim=16, dropout=0.0,
                      normalize_first=True),
        embedding=encoder.get_layer(EMBEDDING_LAYER))
    model = ReplacedTokenDetection(encoder, generator, predictions_per_sequence=4, mask_token_id=4,
                                   unselectable_ids=(0, 2, 3), mask_rate=0.2, seed=seed)
    return encoder, generator, model


def token_ids(rows=64, length=16, vocabulary=60, seed=0):
    ids = np.random.default_rng(seed).integers(5, vocabulary, size=(rows, length)).astype("int32")
    ids[:, 0] = 2
    ids[: rows // 2, -4:] = 0  # padding on half the rows
    return ids


def test_the_corrupted_sequence_differs_from_the_input_exactly_where_labelled_replaced():
    keras.utils.set_random_seed(0)
    encoder, generator, model = tiny_model()
    ids = token_ids()
    out = {key: np.asarray(value) for key, value in model(ids).items()}
    replaced, real = out["replaced"], out["real"]
    np.testing.assert_array_equal(real, ids != 0)
    # Replacements only where something was masked, never on [PAD] or [CLS], at most one per slot.
    assert replaced.sum() > 0
    assert not replaced[ids == 0].any() and not replaced[:, 0].any()
    assert (replaced.sum(axis=1) <= out["mask_weights"].sum(axis=1)).all()
    # The generator shares the encoder's embedding (ELECTRA's tying): one set of weights.
    assert generator.get_layer(EMBEDDING_LAYER) is encoder.get_layer(EMBEDDING_LAYER)


def test_training_lowers_the_loss_and_resuming_keeps_the_sampling_state(tmp_path):
    keras.utils.set_random_seed(0)
    encoder, _, model = tiny_model()
    model.compile(optimizer=keras.optimizers.AdamW(3e-3))
    ids = token_ids(128)
    before = encoder.get_weights()
    history = model.fit(ids, batch_size=32, epochs=4, verbose=0).history
    assert sorted(history) == ["generator_accuracy", "loss", "replaced_accuracy"]
    assert history["loss"][-1] < history["loss"][0]
    assert any(not np.allclose(a, b) for a, b in zip(before, encoder.get_weights()))
    model.save_weights(tmp_path / "rtd.weights.h5")
    _, _, resumed = tiny_model()
    resumed(ids[:2])
    resumed.load_weights(tmp_path / "rtd.weights.h5")
    np.testing.assert_array_equal(np.asarray(resumed.sample_seed.state.value), np.asarray(model.sample_seed.state.value))
    np.testing.assert_array_equal(np.asarray(resumed.generator.seed_generator.state.value),
                                  np.asarray(model.generator.seed_generator.state.value))


def test_the_replaced_token_curve_bench_runs(tmp_path, monkeypatch, miniature_mlm_data):
    monkeypatch.chdir(tmp_path)
    data_dir, mlm_data = miniature_mlm_data(sst2_train=300, sst2_dev=40, train_rows=128, valid_rows=32, predictions=4)
    params = tmp_path / "params.yaml"  # 3e-3: read as a float, as the series reads its profiles
    params.write_text("SEED: 3\nNUM_LAYERS: 1\nMODEL_DIM: 16\nNUM_HEADS: 2\nINTERMEDIATE_DIM: 32\nDROPOUT: 0.0\n"
                      "NORMALIZE_FIRST: true\nPRETRAIN_BATCH_SIZE: 8\nPRETRAIN_LEARNING_RATE: 3e-3\n"
                      "PRETRAIN_SCHEDULE: warmup_cosine\nPRETRAIN_MINUTES: 0.05\nFINETUNE_BATCH_SIZE: 16\n"
                      "CURVE_LEARNING_RATE: 0.001\nBASELINE_MAX_TOKENS: 100\nCURVE_MIN_STEPS: 5\nBUCKETED: true\n"
                      "CURVE_BUDGETS: \"40\"\nCURVE_SEEDS: 1\n")
    spec = importlib.util.spec_from_file_location("replaced_token_curve", ROOT / "bench" / "replaced_token_curve.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "curve.json"
    results = bench.main(["--mlm-data", str(mlm_data), "--params", str(params), "--data-dir", str(data_dir),
                          "--generator-intermediate-dim", "16", "--out", str(out)])
    assert json.loads(out.read_text())["pretraining"]["steps"] == results["pretraining"]["steps"] >= 10
    history = results["pretraining"]["history"]
    assert len(history["val_replaced_accuracy"]) == len(history["minutes"]) == 10
    accuracy = results["curve"]["accuracy"]
    assert set(accuracy) == {"bag of words", "transformer, no pretraining", "transformer, RTD-pretrained"}
    assert all(len(accuracy[arm]["40"]) == 1 for arm in accuracy)


def test_a_logits_head_gives_the_softmax_heads_loss_and_accuracy():
    """`from_logits=True` with a logits head (the faster GPU setting) computes the same training signal."""
    keras.utils.set_random_seed(0)
    encoder = build_encoder(200, 16, num_layers=1, model_dim=16, num_heads=2, intermediate_dim=32, dropout=0.0)
    softmax = build_pretraining_model(encoder, 4)
    logits = logits_pretraining_model(encoder, 4)
    logits.get_layer("mlm_head").set_weights(softmax.get_layer("mlm_head").get_weights())
    ids = np.random.default_rng(0).integers(5, 200, size=(8, 16)).astype("int32")
    results = []
    for pretrainer, from_logits in ((softmax, False), (logits, True)):
        model = SelfMaskingMLM(pretrainer, mask_token_id=MASK_ID, unselectable_ids=UNSELECTABLE, mask_rate=0.2,
                               seed=3, from_logits=from_logits)
        model.compile(optimizer="sgd")
        results.append(model.evaluate(ids, verbose=0, return_dict=True))
    assert results[0]["loss"] == pytest.approx(results[1]["loss"], rel=1e-5)
    assert results[0]["sparse_categorical_accuracy"] == results[1]["sparse_categorical_accuracy"]


SETTINGS = """
from nbhelpers.training import set_precision, use_xla
print(json.dumps({"backend": keras.backend.backend(), "xla": use_xla(), "precision": set_precision("auto")}))
"""


def test_shuffled_passes_run_whole_passes_end_to_end_in_seeded_orders():
    order = shuffled_passes(10, 25, seed=3)
    assert len(order) == 25
    assert sorted(order[:10]) == sorted(order[10:20]) == list(range(10))  # whole passes, each a permutation
    assert list(order[:10]) != list(order[10:20])  # each in its own order
    np.testing.assert_array_equal(order, shuffled_passes(10, 25, seed=3))


def test_the_generator_shares_the_encoders_embedding_and_has_blocks_of_its_own():
    encoder, generator, _ = tiny_model()
    assert generator.get_layer(EMBEDDING_LAYER) is encoder.get_layer(EMBEDDING_LAYER)
    assert generator.get_layer("transformer_0") is not encoder.get_layer("transformer_0")


@pytest.mark.parametrize("normalize_first", [False, True])
def test_the_guides_encoder_attends_to_padding_where_ours_ignores_it(normalize_first):
    keras.utils.set_random_seed(0)
    ours = build_encoder(50, 8, num_layers=1, model_dim=8, num_heads=2, intermediate_dim=16, dropout=0.0,
                         normalize_first=normalize_first)
    guide = rewire_encoder(ours, use_padding_mask=False)
    assert {id(w) for w in guide.weights} == {id(w) for w in ours.weights}  # the same layers and weights
    ids = np.array([[5, 6, 7, 0, 0, 0, 0, 0]], "int32")
    np.testing.assert_allclose(np.asarray(rewire_encoder(ours)(ids)), np.asarray(ours(ids)), atol=1e-6)
    # The real tokens' vectors: the same with less padding for ours, not for the guide's.
    np.testing.assert_allclose(np.asarray(ours(ids))[0, :3], np.asarray(ours(ids[:, :4]))[0, :3], atol=1e-5)
    assert not np.allclose(np.asarray(guide(ids))[0, :3], np.asarray(guide(ids[:, :4]))[0, :3], atol=1e-4)

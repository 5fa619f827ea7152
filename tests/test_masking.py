import keras
import numpy as np
import pytest
import tensorflow as tf

from nbhelpers.masking import MaskGenerator, SelfMaskingMLM, describe_masking, make_mask_generator, mask_batch
from nbhelpers.models import build_encoder, build_pretraining_model
from nbhelpers.tokenization import make_tokenizer

MASK_ID = 4


def _tokenizer(hand_vocabulary, length=8):
    return make_tokenizer(hand_vocabulary, sequence_length=length)


def test_rates_one_one_zero_mask_every_real_token_exactly(hand_vocabulary):
    tokenizer = _tokenizer(hand_vocabulary)
    masker = make_mask_generator(
        tokenizer, mask_rate=1.0, predictions_per_sequence=8, mask_token_rate=1.0, random_token_rate=0.0
    )
    ids = np.array([[2, 5, 6, 7, 8, 3, 0, 0], [5, 9, 0, 0, 0, 0, 0, 0]], "int32")  # [CLS] ... [SEP]
    features, labels, weights = mask_batch(masker, ids)
    np.testing.assert_array_equal(
        features["token_ids"], [[2, 4, 4, 4, 4, 3, 0, 0], [4, 4, 0, 0, 0, 0, 0, 0]]
    )
    np.testing.assert_array_equal(features["mask_positions"][0][:4], [1, 2, 3, 4])
    np.testing.assert_array_equal(features["mask_positions"][1][:2], [0, 1])
    np.testing.assert_array_equal(labels[0][:4], [5, 6, 7, 8])
    np.testing.assert_array_equal(labels[1][:2], [5, 9])
    np.testing.assert_array_equal(weights, [[1, 1, 1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0, 0]])


def test_the_real_rate_selects_the_expected_fraction_and_never_special_tokens(hand_vocabulary):
    tokenizer = _tokenizer(hand_vocabulary, length=64)
    masker = make_mask_generator(tokenizer, mask_rate=0.2, predictions_per_sequence=25)
    rng = np.random.default_rng(0)
    ids = rng.integers(5, len(hand_vocabulary), size=(512, 64)).astype("int32")
    ids[:, 0], ids[:, 40], ids[:, 50:] = 2, 3, 0  # [CLS], [SEP], padding
    tf.random.set_seed(0)
    features, labels, weights = mask_batch(masker, ids)
    weights = np.asarray(weights)
    selectable = 48  # 64 - [CLS] - [SEP] - 14 padding
    assert abs(weights.sum() / (512 * selectable) - 0.2) < 0.01
    assert weights.sum(axis=1).max() <= 25
    positions = np.asarray(features["mask_positions"])[weights > 0]
    assert not np.isin(positions, [0, 40]).any() and (positions < 50).all()
    # Of the selected tokens about 80 % become [MASK], 10 % a random token, 10 % stay.
    masked = np.take_along_axis(np.asarray(features["token_ids"]), np.asarray(features["mask_positions"]), 1)
    selected_inputs = masked[weights > 0]
    assert abs(np.mean(selected_inputs == MASK_ID) - 0.8) < 0.03
    unchanged = selected_inputs == np.asarray(labels)[weights > 0]
    assert 0.07 < np.mean(unchanged) < 0.15  # 10 % kept, plus random draws that hit the same token


def test_describe_masking_shows_masked_text_and_answers(hand_vocabulary):
    tokenizer = _tokenizer(hand_vocabulary)
    masker = make_mask_generator(tokenizer, 1.0, 2, mask_token_rate=1.0, random_token_rate=0.0)
    described = describe_masking(tokenizer, *mask_batch(masker, np.array([[5, 6, 0, 0, 0, 0, 0, 0]], "int32")))
    assert described == [("[MASK] [MASK]", ["0: [MASK] <- the", "1: [MASK] <- film"])]


def test_masks_match_keras_hub_mask_generator_statistically(hand_vocabulary):
    import keras_hub

    tokenizer = _tokenizer(hand_vocabulary, length=64)
    ours = make_mask_generator(tokenizer, mask_rate=0.2, predictions_per_sequence=8)
    reference = keras_hub.layers.MaskedLMMaskGenerator(
        vocabulary_size=ours.vocabulary_size, mask_selection_rate=0.2, mask_token_id=MASK_ID,
        mask_selection_length=8, unselectable_token_ids=list(ours.unselectable_ids),
    )
    rng = np.random.default_rng(1)
    ids = rng.integers(5, len(hand_vocabulary), size=(1024, 64)).astype("int32")
    lengths = rng.integers(2, 64, size=1024)
    ids[np.arange(64)[None, :] >= lengths[:, None]] = 0
    ids[:, 0] = 2
    features, labels, weights = mask_batch(ours, ids, seed=(3, 4))
    expected = next(iter(tf.data.Dataset.from_tensors(ids).map(reference)))  # as in the guide
    # The same number of predictions in every sequence (ceil(rate x selectable), capped) ...
    np.testing.assert_array_equal(np.sum(weights, 1), np.sum(expected["mask_weights"], 1))
    # ... spread over positions alike, and replaced alike (80 % [MASK], 10 % random, 10 % kept).
    def shares(token_ids, positions, targets, weights):
        chosen = np.asarray(weights) > 0
        inputs = np.take_along_axis(np.asarray(token_ids), np.asarray(positions), 1)[chosen]
        return (np.mean(np.asarray(positions)[chosen]), np.mean(inputs == MASK_ID),
                np.mean(inputs == np.asarray(targets)[chosen]))
    ours_shares = shares(features["token_ids"], features["mask_positions"], labels, weights)
    reference_shares = shares(expected["token_ids"], expected["mask_positions"], expected["mask_ids"], expected["mask_weights"])
    np.testing.assert_allclose(ours_shares, reference_shares, rtol=0.08)


@pytest.mark.parametrize("length", [5, 12])  # shorter and longer than the prediction slots
def test_both_masking_implementations_mask_alike_from_the_same_draws(length):
    """`MaskGenerator` (tf.data) and `SelfMaskingMLM` (keras.ops, in the step) apply one rule: fed the
    same random numbers, they give the same masked ids, positions, targets and weights."""
    vocabulary, slots = 40, 6
    encoder = build_encoder(vocabulary, 16, num_layers=1, model_dim=8, num_heads=2, intermediate_dim=16, dropout=0.0)
    in_step = SelfMaskingMLM(build_pretraining_model(encoder, slots), mask_token_id=MASK_ID,
                             unselectable_ids=(0, 2, 3), mask_rate=0.4, seed=0)
    in_tf_data = MaskGenerator(vocabulary, MASK_ID, (0, 2, 3), mask_rate=0.4, predictions_per_sequence=slots)
    rng = np.random.default_rng(length)
    ids = rng.integers(5, vocabulary, size=(64, length)).astype("int32")
    ids[:, 0] = 2  # [CLS]
    ids[np.arange(length)[None, :] >= rng.integers(1, length + 1, size=(64, 1))] = 0  # padding of every length
    draws = {"priority": rng.random((64, length), "float32"),
             "replacement": rng.random((64, slots), "float32"),
             "random_token": rng.integers(0, vocabulary, size=(64, slots)).astype("int32")}
    ours = in_tf_data.mask_with(tf.constant(ids), {key: tf.constant(value) for key, value in draws.items()})
    theirs = in_step.mask_with(keras.ops.convert_to_tensor(ids), draws)
    assert sorted(ours) == sorted(theirs)
    for key in ours:
        np.testing.assert_array_equal(np.asarray(ours[key]), keras.ops.convert_to_numpy(theirs[key]), err_msg=key)
    masked = np.asarray(ours["token_ids"])
    assert (masked == MASK_ID).any() and (masked != ids).any(axis=1).mean() > 0.5  # the draws did mask

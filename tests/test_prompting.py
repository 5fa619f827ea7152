"""Fine-tuning as a cloze: prompts, label words, and the classifier read off the MLM head."""

import numpy as np
import pytest

from nbhelpers.models import build_encoder, build_pretraining_model, pretrainer_from_config
from nbhelpers.batches import classification_dataset
from nbhelpers.prompting import Prompt, build_prompt_classifier, top_fill_ins
from nbhelpers.tokenization import make_tokenizer, tokenize_texts
from nbhelpers.training import compile_classifier, finetuning_optimizer, set_seed

CONFIG = {"sequence_length": 10, "num_layers": 1, "model_dim": 8, "num_heads": 2, "intermediate_dim": 16,
          "dropout": 0.0, "normalize_first": True, "predictions_per_sequence": 2}


@pytest.fixture
def tokenizer(hand_vocabulary):
    return make_tokenizer(hand_vocabulary + ["it", "is"], CONFIG["sequence_length"])


def test_a_prompt_is_its_token_ids_around_one_mask_and_two_label_words(tokenizer):
    prompt = Prompt.parse(tokenizer, "it was [MASK] .", "bad, good")
    ids = [tokenizer.token_to_id(t) for t in ("it", "was", "[MASK]", ".")]
    assert prompt.token_ids == tuple(ids) and prompt.mask_token_id == tokenizer.token_to_id("[MASK]")
    assert prompt.label_word_ids == (tokenizer.token_to_id("bad"), tokenizer.token_to_id("good"))


@pytest.mark.parametrize("pattern, words, message", [
    ("it was .", "bad,good", r"must hold \[MASK\] exactly once"),
    ("[MASK] or [MASK]", "bad,good", r"must hold \[MASK\] exactly once"),
    ("it was [MASK]", "good", "give two words, negative then positive"),
    ("it was [MASK]", "bad,good,film", "give two words, negative then positive"),
    ("it was [MASK]", "bad,goods", r"'goods' tokenizes to \['good', '##s'\]"),
    ("it was [MASK]", "awful,good", r"'awful' tokenizes to \['\[UNK\]'\]"),
])
def test_bad_prompts_and_label_words_say_what_to_change(tokenizer, pattern, words, message):
    with pytest.raises(ValueError, match=message):
        Prompt.parse(tokenizer, pattern, words)


def test_the_prompt_follows_the_text_and_long_texts_are_cut_to_keep_it(tokenizer):
    prompt = Prompt.parse(tokenizer, "it was [MASK] .", "bad,good")
    tokens = tokenize_texts(tokenizer, ["the film", "the film was not good . the film was bad", ""])
    prompted = prompt.apply(tokens)
    assert prompted.shape == tokens.shape
    assert list(prompted[0]) == [*tokens[0, :2], *prompt.token_ids, 0, 0, 0, 0]
    assert list(prompted[1]) == [*tokens[1, :6], *prompt.token_ids]  # the text gives way, not the prompt
    assert list(prompted[2]) == [*prompt.token_ids, 0, 0, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="too long for sequences of 10: shorten it"):
        Prompt.parse(tokenizer, "it was the film that was [MASK] . it was", "bad,good").apply(tokens)


def _pretrainer(tokenizer):
    encoder = build_encoder(tokenizer.vocabulary_size(), CONFIG["sequence_length"], **{
        k: CONFIG[k] for k in ("num_layers", "model_dim", "num_heads", "intermediate_dim", "dropout", "normalize_first")
    })
    return build_pretraining_model(encoder, CONFIG["predictions_per_sequence"], activation=None)


def test_the_classifier_is_the_sigmoid_of_the_label_words_logit_gap_at_the_mask(tokenizer):
    prompt = Prompt.parse(tokenizer, "it was [MASK] .", "bad,good")
    pretrainer = _pretrainer(tokenizer)
    classifier = build_prompt_classifier(pretrainer.get_layer("encoder"), pretrainer.get_layer("mlm_head"), prompt)
    token_ids = prompt.apply(tokenize_texts(tokenizer, ["the film", "a bad film . not good", "cafe"]))
    positions = np.argmax(token_ids == prompt.mask_token_id, axis=1)
    logits = np.asarray(pretrainer({"token_ids": token_ids, "mask_positions": np.stack([positions] * 2, axis=1)}))[:, 0]
    bad, good = prompt.label_word_ids
    expected = 1 / (1 + np.exp(-(logits[:, good] - logits[:, bad])))
    np.testing.assert_allclose(np.asarray(classifier(token_ids))[:, 0], expected, rtol=1e-5)
    # Less trailing [PAD] (a shorter bucket) changes nothing.
    short = token_ids[[0, 2]]
    np.testing.assert_allclose(classifier(short[:, :8]), classifier(short), rtol=1e-5)


def test_saved_mlm_weights_rebuild_the_same_head_and_the_classifier_learns(tokenizer, tmp_path):
    set_seed(0)  # whatever ran before in this process (the tests share workers)
    pretrainer = _pretrainer(tokenizer)
    pretrainer.save_weights(tmp_path / "mlm.weights.h5")
    rebuilt = pretrainer_from_config(CONFIG, tokenizer.vocabulary_size(), tmp_path / "mlm.weights.h5", activation=None)
    inputs = {"token_ids": np.ones((2, 10), "int32") * 5, "mask_positions": np.zeros((2, 2), "int32")}
    np.testing.assert_allclose(rebuilt(inputs), pretrainer(inputs), rtol=1e-6)

    prompt = Prompt.parse(tokenizer, "it was [MASK] .", "bad,good")
    classifier = build_prompt_classifier(rebuilt.get_layer("encoder"), rebuilt.get_layer("mlm_head"), prompt)
    sentences = ["the film was good", "the film was bad", "a good film", "a bad film"] * 16
    labels = [1, 0, 1, 0] * 16
    data = classification_dataset(prompt.apply(tokenize_texts(tokenizer, sentences)), labels, 16, shuffle_seed=0)
    history = compile_classifier(classifier, finetuning_optimizer(1e-2)).fit(data, epochs=8, verbose=0, shuffle=False).history
    assert history["accuracy"][-1] == 1.0 and history["loss"][-1] < history["loss"][0] / 2


def test_top_fill_ins_mask_a_whole_word_and_rank_guesses(hand_vocabulary):
    tokenizer = make_tokenizer(hand_vocabulary, sequence_length=16)
    set_seed(0)
    encoder = build_encoder(len(hand_vocabulary), 16, num_layers=2, model_dim=16, num_heads=2, intermediate_dim=32,
                            dropout=0.1)
    pretrainer = build_pretraining_model(encoder, 3)
    results = top_fill_ins(pretrainer, tokenizer, ["the film was good .", ". . .", "a bad films"], top_k=4)
    assert [(text, answer) for text, answer, _ in results] == [
        ("the film [MASK] good .", "was"),
        ("a [MASK] film ##s", "bad"),  # "films" is two pieces: the whole word "bad" is masked
    ]
    probabilities = [p for _, _, guesses in results for _, p in guesses]
    assert len(results[0][2]) == 4 and all(0 <= p <= 1 for p in probabilities)
    assert [p for _, p in results[0][2]] == sorted((p for _, p in results[0][2]), reverse=True)

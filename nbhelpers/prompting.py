"""The pretrained MLM head at work: filling a masked word, and fine-tuning as a cloze.

`top_fill_ins` lists what a pretrained MLM model guesses for a sentence's masked middle word
(notebook 03 shows what pretraining learned with it).

Fine-tuning as a cloze (notebook 04): the pretrained MLM head reads the label from a `[MASK]`
in a prompt.

A classifier head on pooled vectors starts from random weights and must learn what the
encoder's vectors mean from the labels alone, which is slow when labels are few. The MLM head
already knows which words fit a gap: after "a gripping , heartfelt film . it was [MASK] ." a
model pretrained on reviews puts more weight on "great" than on "terrible". Fine-tuning that
comparison (pattern-exploiting training, Schick & Schütze 2021; LM-BFF, Gao et al. 2021)
starts from the pretrained head's knowledge instead of from zero, and needs no new weights.

Usage (names as in the notebooks):

    for text, answer, guesses in top_fill_ins(pretrainer, tokenizer, ["the film was very good ."]):
        print(text, answer, guesses)  # the film [MASK] very good . was [('was', ...), ...]
    prompt = Prompt.parse(tokenizer, "it was [MASK] .", "terrible,great")
    classifier = build_prompt_classifier(encoder, pretrainer.get_layer("mlm_head"), prompt)
    classifier(prompt.apply(tokenize_texts(tokenizer, ["a gripping film"])))  # P(positive)
"""

import dataclasses

import keras
import numpy as np

from nbhelpers.tokenization import MASK, PAD_ID, UNK


@dataclasses.dataclass(frozen=True)
class Prompt:
    """A prompt's token ids (with one `[MASK]`), and the two label words' ids (negative, positive).

    Build it with `Prompt.parse`.
    """

    token_ids: tuple
    mask_token_id: int
    label_word_ids: tuple

    @classmethod
    def parse(cls, tokenizer, pattern, label_words):
        """Tokenize `pattern` (text around one `[MASK]`) and `label_words` ("negative,positive").

        Raises a ValueError that says what to change when the pattern has no single `[MASK]`,
        or a label word is not one token of the vocabulary.
        """
        if pattern.count(MASK) != 1:
            raise ValueError(f"The prompt {pattern!r} must hold {MASK} exactly once, where the label word goes "
                             f"(for example \"it was {MASK} .\").")
        words = [word.strip() for word in label_words.split(",")]
        if len(words) != 2 or not all(words):
            raise ValueError(f"Label words {label_words!r}: give two words, negative then positive, separated by a "
                             "comma (for example \"terrible,great\").")
        before, after = pattern.split(MASK)
        mask_id = tokenizer.token_to_id(MASK)
        ids = [*_ids(tokenizer, before), mask_id, *_ids(tokenizer, after)]
        word_ids = []
        for word in words:
            pieces = _ids(tokenizer, word)
            if len(pieces) != 1 or pieces[0] == tokenizer.token_to_id(UNK):
                raise ValueError(f"The label word {word!r} tokenizes to {[tokenizer.id_to_token(i) for i in pieces]} "
                                 "in this vocabulary: choose words that are one known token each (a common word, "
                                 "present in vocab.txt).")
            word_ids.append(pieces[0])
        return cls(tuple(ids), mask_id, tuple(word_ids))

    def apply(self, token_ids):
        """Append the prompt after each row's real tokens, cutting the text (not the prompt) to fit.

        `token_ids`: `(examples, length)` int array, `[PAD]` (0) only at the end of a row, as
        `tokenize_texts` gives. Returns an array of the same shape.
        """
        token_ids = np.asarray(token_ids)
        length, size = token_ids.shape[1], len(self.token_ids)
        if size >= length:
            raise ValueError(f"The prompt is {size} tokens, too long for sequences of {length}: shorten it.")
        kept = np.minimum((token_ids != PAD_ID).sum(axis=1), length - size)
        prompted = np.full_like(token_ids, PAD_ID)
        for row, count in enumerate(kept):
            prompted[row, :count] = token_ids[row, :count]
            prompted[row, count : count + size] = self.token_ids
        return prompted


def _ids(tokenizer, text):
    return [int(i) for i in np.asarray(tokenizer(text)) if i != PAD_ID]


def build_prompt_classifier(encoder, mlm_head, prompt):
    """A sentiment classifier that reads the MLM head's preference between the two label words.

    Args:
        encoder: the (pretrained) encoder.
        mlm_head: its `keras_hub.layers.MaskedLMHead`, built with `activation=None` (logits).
        prompt: a `Prompt`; inputs must have been through `prompt.apply`.

    Returns:
        A model from token ids `(batch, length)` to P(positive) `(batch, 1)`: the sigmoid of the
        positive word's logit minus the negative word's, at the `[MASK]` position.
    """
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    encoded = encoder(token_ids)
    is_mask = keras.ops.cast(keras.ops.equal(token_ids, prompt.mask_token_id), "int32")
    mask_position = keras.ops.expand_dims(keras.ops.argmax(is_mask, axis=1), -1)
    logits = mlm_head(encoded, mask_positions=keras.ops.cast(mask_position, "int32"))[:, 0, :]
    negative, positive = (logits[:, i : i + 1] for i in prompt.label_word_ids)
    outputs = keras.ops.sigmoid(keras.ops.cast(positive - negative, "float32"))
    return keras.Model(token_ids, outputs, name="prompt_classifier")


def mask_middle_word(token_ids, tokenizer):
    """Replace the middle whole word (not a `##` piece, not special) with `[MASK]`.

    Returns:
        `(masked_ids, position, original_id)`, or `None` if the sequence has no such word.
    """
    tokens = [tokenizer.id_to_token(int(i)) for i in token_ids]
    candidates = [
        position
        for position, token in enumerate(tokens)
        if token.isalpha() and not token.startswith("[")
        and (position + 1 >= len(tokens) or not tokens[position + 1].startswith("##"))
    ]
    if not candidates:
        return None
    position = candidates[len(candidates) // 2]
    masked = np.array(token_ids, "int32")
    original = int(masked[position])
    masked[position] = tokenizer.token_to_id(MASK)
    return masked, position, original


def top_fill_ins(pretrainer, tokenizer, sentences, top_k=5):
    """For each sentence, mask its middle word and list the model's `top_k` guesses.

    Args:
        pretrainer: the MLM model from `models.build_pretraining_model`.
        tokenizer: the WordPiece tokenizer the model was trained with.
        sentences: a list of str.
        top_k: how many guesses per sentence.

    Returns:
        A list of `(masked_text, answer, [(token, probability), ...])`, one per sentence that
        has a whole word to mask.
    """
    predictions = pretrainer.input["mask_positions"].shape[1]
    results = []
    for ids in np.asarray(tokenizer(sentences)):
        masked = mask_middle_word(ids, tokenizer)
        if masked is None:
            continue
        masked_ids, position, original = masked
        positions = np.zeros((1, predictions), "int32")
        positions[0, 0] = position
        probabilities = np.asarray(
            pretrainer({"token_ids": masked_ids[None], "mask_positions": positions}, training=False)
        )[0, 0]
        best = np.argsort(probabilities)[::-1][:top_k]
        text = " ".join(tokenizer.id_to_token(int(i)) for i in masked_ids if i != PAD_ID)
        guesses = [(tokenizer.id_to_token(int(i)), float(probabilities[i])) for i in best]
        results.append((text, tokenizer.id_to_token(original), guesses))
    return results

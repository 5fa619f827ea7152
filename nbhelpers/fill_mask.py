"""What a pretrained MLM model learned: its top guesses for a masked word in a sentence.

Example:

>>> for text, answer, guesses in top_fill_ins(pretrainer, tokenizer, ["the film was very good ."]):
...     print(text, answer, guesses)
the film [MASK] very good . was [('was', 0.41), ('is', 0.12), ...]
"""

import numpy as np


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
    masked[position] = tokenizer.token_to_id("[MASK]")
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
    pad_id = tokenizer.token_to_id("[PAD]")
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
        text = " ".join(tokenizer.id_to_token(int(i)) for i in masked_ids if i != pad_id)
        guesses = [(tokenizer.id_to_token(int(i)), float(probabilities[i])) for i in best]
        results.append((text, tokenizer.id_to_token(original), guesses))
    return results

import keras
import numpy as np
import pytest

from nbhelpers.finetune_recipes import (
    HEAD_LAYER, WeightAveraging, linear_probe, parse_recipe, pooled_features, prepare_recipe,
)
from nbhelpers.models import EMBEDDING_LAYER, build_classifier, build_encoder
from nbhelpers.batches import classification_dataset
from nbhelpers.training import compile_classifier, finetuning_optimizer

SMALL = dict(vocabulary_size=40, sequence_length=12, num_layers=1, model_dim=8, num_heads=2, intermediate_dim=16, dropout=0.0)


def _classifier():
    keras.utils.set_random_seed(0)
    return build_classifier(build_encoder(**SMALL))


def _data(rows=96, shuffle_seed=0):
    # Label 1 where the sentence starts with token 5, 0 where with token 6: learnable from the pooled features.
    rng = np.random.default_rng(0)
    tokens = rng.integers(7, 40, size=(rows, 8)).astype("int32")
    labels = np.arange(rows) % 2
    tokens[:, :4] = np.where(labels == 1, 5, 6)[:, None]
    tokens[::3, 6:] = 0  # some padding
    return classification_dataset(tokens, labels, batch_size=16, shuffle_seed=shuffle_seed)


def test_recipe_names_are_checked():
    assert parse_recipe("plain") == frozenset()
    assert parse_recipe("lp_ft+averaged") == {"lp_ft", "averaged"}
    for bad in ("lpft", "plain+averaged", "averaged+averaged", "", 3):
        with pytest.raises(ValueError, match="FINETUNE_RECIPE"):
            parse_recipe(bad)


def test_the_linear_probe_fits_the_head_and_leaves_the_encoder_as_it_was():
    classifier, data = _classifier(), _data()
    encoder_before = [w.copy() for w in classifier.get_layer("encoder").get_weights()]
    head_before = [w.copy() for w in classifier.get_layer(HEAD_LAYER).get_weights()]
    in_order = _data(shuffle_seed=None)
    features_before = pooled_features(classifier, in_order)[0]
    accuracy = linear_probe(classifier, data, epochs=60, batch_size=32, learning_rate=0.05)
    for before, after in zip(encoder_before, classifier.get_layer("encoder").get_weights()):
        np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(features_before, pooled_features(classifier, in_order)[0])
    assert not np.allclose(head_before[0], classifier.get_layer(HEAD_LAYER).get_weights()[0])
    assert accuracy > 0.9
    # The head the classifier now has is the probe's: its own accuracy on the data agrees.
    compile_classifier(classifier, finetuning_optimizer(1e-3))
    assert classifier.evaluate(data, verbose=0)[1] > 0.9


def test_averaging_gives_the_mean_of_the_weights_it_averaged():
    classifier, data = _classifier(), _data()

    class Record(keras.callbacks.Callback):  # what each snapshot step saw (before averaging)
        def on_train_begin(self, logs=None):
            self.step, self.seen = 0, {}

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            self.seen[self.step] = [keras.ops.convert_to_numpy(v).copy() for v in self.model.trainable_variables]

    # Plain AdamW (no lazy rows), so that the weights after the last step are those at the end of `fit`.
    classifier.compile(loss="binary_crossentropy", optimizer=keras.optimizers.AdamW(1e-2))
    record, averaging = Record(), WeightAveraging(start_step=4, every=3, assign=False)
    classifier.fit(data.repeat(), epochs=2, steps_per_epoch=6, callbacks=[record, averaging], verbose=0, shuffle=False)
    steps = [4, 7, 10, 12]  # from step 4 every 3, then the end of training
    assert averaging.snapshots == len(steps)
    # Watching leaves the trained weights as they were; `apply` puts the mean in place.
    for index, variable in enumerate(classifier.trainable_variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), record.seen[12][index])
    averaging.apply()
    for index, variable in enumerate(classifier.trainable_variables):
        expected = np.mean([record.seen[step][index] for step in steps], axis=0)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), expected, rtol=1e-5, atol=1e-6)


def test_slow_embedding_keeps_the_token_embedding_and_trains_the_rest():
    classifier, data = _classifier(), _data()
    embedding = classifier.get_layer("encoder").get_layer(EMBEDDING_LAYER).token_embedding
    before = keras.ops.convert_to_numpy(embedding.embeddings).copy()
    head_before = classifier.get_layer(HEAD_LAYER).get_weights()[0].copy()
    callbacks = prepare_recipe(classifier, "slow_embedding+averaged", data, total_steps=12, log=lambda line: None)
    assert [type(c) for c in callbacks] == [WeightAveraging]
    compile_classifier(classifier, finetuning_optimizer(1e-2))
    classifier.fit(data.repeat(), epochs=2, steps_per_epoch=6, callbacks=callbacks, verbose=0, shuffle=False)
    np.testing.assert_array_equal(before, keras.ops.convert_to_numpy(embedding.embeddings))
    assert not np.allclose(head_before, classifier.get_layer(HEAD_LAYER).get_weights()[0])

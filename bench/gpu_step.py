"""The TensorFlow-free MLM training step on an accelerator: sequences per second and MFU.

The path (issue 4): token arrays in, masking inside the compiled step (`SelfMaskingMLM`), the
JAX backend, and no TensorFlow imported anywhere. For the guide's encoder at the guide's shape
(3 layers, width 128, 2 heads, FFN 512; 128 tokens, 25 predictions, 30,522-word vocabulary) and
each recipe (block style), head, precision and batch size, it times

- `step`: the jitted training step alone (Keras' `stateless_call`, `jax.value_and_grad` and the
  optimizer's `stateless_apply`) on batches already on the device: what the chip sustains;
- `fit`: Keras' `fit` from a NumPy array, as a notebook runs it: the step plus Keras' per-step
  work and the copy of each batch to the device.

Each time is the median of five repeats of enough steps to run about a second. It reports
sequences and tokens per second and the model FLOPs utilisation (MFU): the model's training
FLOPs (`training_flops_per_sequence`, set beside XLA's own count of the compiled step) per
second, over the chip's dense bf16 matrix rate as measured here (an 8192^3 bf16 product).
The batches are random token ids (the time of a step does not depend on which ids).

With `--parity-data` (notebook 02's artifact folder) it also trains the `cpu` profile's
pretraining recipe (`params/cpu.yaml`) for `--parity-steps` steps on those real tokens and
reports the validation MLM accuracy and the wall time, to set beside the CPU run of that recipe.

    KERAS_BACKEND=jax python bench/gpu_step.py --parity-data artifacts/cpu/02_mlm_data \\
        --out bench/results/gpu-step.json

(docs/results/gpu-h200.md: the runs on an H200, with the exact commands and how the wheels
travelled to a machine without TensorFlow.)

On a CPU it runs too (`--batch-sizes 8 --precisions float32` for a quick look); the figures
that mean something come from an accelerator.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402

from nbhelpers.masking import SelfMaskingMLM  # noqa: E402
from nbhelpers.models import build_encoder, build_pretraining_model  # noqa: E402
from nbhelpers.params import read_yaml  # noqa: E402
from nbhelpers.schedules import learning_rate  # noqa: E402
from nbhelpers.tokenization import MASK, NEVER_MASKED, SPECIAL_TOKENS  # noqa: E402
from nbhelpers.training import set_seed  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchlib.py, beside this script: bench/ is no package
from benchlib import logits_pretraining_model, shuffled_passes  # noqa: E402

GUIDE_MODEL = dict(num_layers=3, model_dim=128, num_heads=2, intermediate_dim=512)
# The guide's recipe (post-layer-norm, dropout 0.1) and the cpu profile's (pre-layer-norm, no dropout).
RECIPES = {"guide": dict(dropout=0.1, normalize_first=False), "ours": dict(dropout=0.0, normalize_first=True)}
# The MLM head: a float32 softmax (notebook 03's), or logits in the global policy's dtype with the
# log-softmax in the loss (half the bytes of the vocabulary-wide tensors under mixed precision).
HEADS = {"softmax": build_pretraining_model, "logits": logits_pretraining_model}
# Both vocabularies start with the special tokens, so their ids are their places in that list.
SPECIAL_IDS = tuple(range(len(SPECIAL_TOKENS)))
NEVER_MASKED_IDS = tuple(SPECIAL_TOKENS.index(token) for token in NEVER_MASKED)
MASK_ID = SPECIAL_TOKENS.index(MASK)


def training_flops_per_sequence(length, predictions, vocabulary_size, num_layers, model_dim, intermediate_dim,
                                **unused):
    """The matrix FLOPs of training on one sequence: three times the forward pass.

    Counted per token and layer: the query, key, value and output projections (4 d^2
    multiply-adds), the feed-forward layer (2 d f) and attention's scores and weighted sum (2 L d);
    per prediction, the MLM head's dense layer (d^2) and its projection onto the tied vocabulary
    (d V). A multiply-add is 2 FLOPs; the backward pass costs twice the forward. Layer norms,
    softmaxes, activations and embedding lookups are left out (they are not matrix work).

    >>> round(training_flops_per_sequence(128, 25, 30522, 3, 128, 512) / 1e9, 3)
    1.117
    """
    d, f, L = model_dim, intermediate_dim, length
    per_token = num_layers * (4 * d * d + 2 * d * f + 2 * L * d)
    per_prediction = d * d + d * vocabulary_size
    return 3 * 2 * (L * per_token + predictions * per_prediction)


def self_masking_mlm(encoder, predictions, head, mask_rate=0.2, seed=0):
    return SelfMaskingMLM(HEADS[head](encoder, predictions), mask_token_id=MASK_ID,
                          unselectable_ids=NEVER_MASKED_IDS, mask_rate=mask_rate, seed=seed,
                          from_logits=head == "logits")


def initial_state(model, optimizer):
    """`(trainable, non_trainable, optimizer_variables)`: copies of the variables' values, as a step takes them.

    Copies, because a step that donates its state frees those buffers, which must not be the
    Keras variables' own.
    """
    optimizer.build(model.trainable_variables)
    return tuple([jax.numpy.copy(v.value) for v in variables]
                 for variables in (model.trainable_variables, model.non_trainable_variables, optimizer.variables))


def jitted_train_step(model, optimizer, loss=None, donate=True):
    """`step(state, inputs, *targets) -> (loss, state)`, one compiled training step of `model`.

    `state` is as `initial_state` makes it; the non-trainable values hold the masks' seed, so
    each step draws new masks. `loss(outputs, *targets)` defaults to the model's own
    `compute_loss` (`SelfMaskingMLM` makes its labels itself). With `donate`, a step reuses the
    memory of the state it was given: keep only the state it returns.
    """

    def loss_of(trainable, non_trainable, inputs, *targets):
        outputs, non_trainable = model.stateless_call(trainable, non_trainable, inputs, training=True)
        value = model.compute_loss(y_pred=outputs) if loss is None else loss(outputs, *targets)
        return value, non_trainable

    gradient_of = jax.value_and_grad(loss_of, has_aux=True)

    def step(state, inputs, *targets):
        trainable, non_trainable, optimizer_variables = state
        (value, non_trainable), gradients = gradient_of(trainable, non_trainable, inputs, *targets)
        trainable, optimizer_variables = optimizer.stateless_apply(optimizer_variables, gradients, trainable)
        return value, (trainable, non_trainable, optimizer_variables)

    return jax.jit(step, donate_argnums=0 if donate else ())


def random_token_ids(rng, count, length, vocabulary_size):
    return rng.integers(len(SPECIAL_IDS), vocabulary_size, size=(count, length), dtype=np.int32)


def timed(run_steps, steps_per_second_guess, repeats=5, seconds=1.0):
    """Median seconds per step over `repeats` runs of about `seconds` each."""
    steps = max(5, int(seconds * steps_per_second_guess))
    per_step = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_steps(steps)
        per_step.append((time.perf_counter() - start) / steps)
    return statistics.median(per_step), steps


def xla_flops(compiled):
    """XLA's FLOP count of a compiled function, or None where this JAX reports none."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, list):  # older JAX: one dict per computation
        analysis = analysis[0] if analysis else None
    return float(analysis["flops"]) if analysis and "flops" in analysis else None


def time_step(model, batches):
    """Seconds per jitted step on device-resident `batches` (cycled), compile seconds, XLA FLOPs."""
    optimizer = keras.optimizers.AdamW(1e-3)
    state = initial_state(model, optimizer)
    step = jitted_train_step(model, optimizer)
    start = time.perf_counter()
    compiled = step.lower(state, batches[0]).compile()
    compile_seconds = time.perf_counter() - start
    holder = {"state": state, "i": 0}

    def run_steps(n):
        loss = None
        for _ in range(n):
            loss, holder["state"] = compiled(holder["state"], batches[holder["i"] % len(batches)])
            holder["i"] += 1
        loss.block_until_ready()  # the device runs ahead of Python; wait for the last step
        if not np.isfinite(float(loss)):
            raise FloatingPointError(f"the loss became {float(loss)}")

    run_steps(5)
    start = time.perf_counter()
    run_steps(5)
    guess = 5 / (time.perf_counter() - start)
    seconds, steps = timed(run_steps, guess)
    return seconds, steps, compile_seconds, xla_flops(compiled)


def time_fit(model, token_ids, batch_size):
    """Seconds per step of `model.fit` on a NumPy array (after a warm-up `fit` that compiles).

    Returns `(seconds per step, steps per repeat, seconds of the warm-up fit)`.
    """
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    batches = len(token_ids) // batch_size

    def run_steps(n):
        done = 0
        while done < n:  # `fit` over whole passes of the array, at most `batches` steps each
            take = min(batches, n - done)
            model.fit(token_ids, batch_size=batch_size, epochs=1, steps_per_epoch=take, verbose=0, shuffle=False)
            done += take

    start = time.perf_counter()
    run_steps(3)
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    run_steps(5)
    return (*timed(run_steps, 5 / (time.perf_counter() - start)), compile_seconds)


def matmul_tflops(size=8192, repeats=20, warmup_seconds=2.0):
    """The dense bf16 matrix rate of the first device, TFLOP/s (median of `repeats` products).

    The products run for `warmup_seconds` first: a GPU's clocks climb from idle, and a reading
    after one warm-up product came out at 500 and 648 TFLOP/s on two H200s that ran the training
    steps at the same speed (recorded in bench/results/gpu-h200-*.json).
    """
    keys = jax.random.split(jax.random.key(0), 2)
    a, b = (jax.random.normal(k, (size, size), dtype=jax.numpy.bfloat16) for k in keys)
    product = jax.jit(lambda x, y: x @ y)
    start = time.perf_counter()
    while time.perf_counter() - start < warmup_seconds:
        product(a, b).block_until_ready()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        product(a, b).block_until_ready()
        seconds.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(seconds) / 1e12


def parity_run(data_dir, params, steps, seed, precision, head, evaluations=10):
    """Train the cpu profile's recipe on notebook 02's real tokens for `steps`; time and val accuracy.

    As notebook 03 with a time budget: the same schedule over `steps`, validated `evaluations`
    times, each pass over the training sequences in a new seeded order.
    """
    data_dir = Path(data_dir)
    config = json.loads((data_dir / "config.json").read_text())
    train, valid = (np.load(data_dir / f"{split}_tokens.npy") for split in ("train", "valid"))
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(precision)
    set_seed(seed)
    encoder = build_encoder(
        config["vocabulary_size"], config["sequence_length"], num_layers=params["NUM_LAYERS"],
        model_dim=params["MODEL_DIM"], num_heads=params["NUM_HEADS"], intermediate_dim=params["INTERMEDIATE_DIM"],
        dropout=params["DROPOUT"], normalize_first=params["NORMALIZE_FIRST"])
    model = self_masking_mlm(encoder, config["predictions_per_sequence"], head, config["mask_rate"], seed)
    batch_size = params["PRETRAIN_BATCH_SIZE"]
    model.compile(optimizer=keras.optimizers.AdamW(
        learning_rate(params["PRETRAIN_LEARNING_RATE"], params["PRETRAIN_SCHEDULE"], steps)))
    steps_per_epoch = -(-steps // evaluations)
    order = shuffled_passes(len(train), evaluations * steps_per_epoch * batch_size, seed)
    start = time.perf_counter()
    history = model.fit(train[order], batch_size=batch_size, epochs=evaluations, steps_per_epoch=steps_per_epoch,
                        validation_data=(valid,), verbose=2, shuffle=False)
    seconds = time.perf_counter() - start
    return {"data": str(data_dir), "vocabulary_size": config["vocabulary_size"],
            "sequence_length": config["sequence_length"], "batch_size": batch_size, "precision": precision,
            "head": head, "steps": int(model.optimizer.iterations.numpy()),
            "seconds_including_compile_and_validation": seconds,
            "val_mlm_accuracy": history.history["val_sparse_categorical_accuracy"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[64, 512, 2048], help="none: no sweep")
    parser.add_argument("--precisions", nargs="+", default=["mixed_bfloat16", "float32"])
    parser.add_argument("--recipes", nargs="+", default=["guide", "ours"], choices=sorted(RECIPES))
    parser.add_argument("--heads", nargs="+", default=["softmax"], choices=sorted(HEADS))
    parser.add_argument("--fit-batch-sizes", type=int, nargs="*", default=[64, 2048],
                        help="batch sizes also timed through model.fit (in the first recipe and precision)")
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--predictions", type=int, default=25)
    parser.add_argument("--vocabulary-size", type=int, default=30522)
    parser.add_argument("--parity-data", default="", help="notebook 02's artifact folder; empty: no parity run")
    parser.add_argument("--parity-params", default="params/cpu.yaml")
    parser.add_argument("--parity-steps", type=int, default=3510, help="the CPU run's optimizer steps")
    parser.add_argument("--parity-runs", nargs="+", default=["float32:softmax"],
                        help="PRECISION:HEAD for each parity run (the CPU run: float32:softmax)")
    parser.add_argument("--out", default="", help="write the results as JSON here")
    args = parser.parse_args(argv)
    if "tensorflow" in sys.modules:
        raise RuntimeError("TensorFlow was imported: this path must run without it.")

    def save():  # after every run, so that a run cut short keeps what it measured
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=2) + "\n")

    shape = dict(length=args.sequence_length, predictions=args.predictions, vocabulary_size=args.vocabulary_size)
    flops = training_flops_per_sequence(**shape, **GUIDE_MODEL)
    device = jax.devices()[0]
    peak = matmul_tflops(size=8192 if device.platform == "gpu" else 1024)
    results = {"machine": {"device": device.device_kind, "platform": device.platform, "host": platform.platform(),
                           "python": sys.version.split()[0], "jax": jax.__version__, "keras": keras.__version__,
                           "keras_hub": keras_hub.__version__, "bf16_matmul_tflops": peak},
               "model": {**GUIDE_MODEL, **shape, "training_flops_per_sequence": flops}, "runs": []}
    print(f"{device.device_kind}: dense bf16 product {peak:.0f} TFLOP/s; model {flops / 1e9:.3f} GFLOP "
          "per training sequence")
    rng = np.random.default_rng(0)
    sweep = [(r, h, p, b) for r in args.recipes for h in args.heads for p in args.precisions for b in args.batch_sizes]
    for recipe, head, precision, batch_size in sweep:
        keras.backend.clear_session()
        keras.mixed_precision.set_global_policy(precision)
        encoder = build_encoder(args.vocabulary_size, args.sequence_length, **GUIDE_MODEL, **RECIPES[recipe])
        model = self_masking_mlm(encoder, args.predictions, head)
        batches = [jax.device_put(random_token_ids(rng, batch_size, args.sequence_length,
                                                   args.vocabulary_size)) for _ in range(4)]
        model(batches[0][:2])  # build
        seconds, steps, compile_seconds, xla = time_step(model, batches)
        runs = [dict(path="step", seconds=seconds, steps=steps, compile_seconds=compile_seconds,
                     xla_flops_per_sequence=xla / batch_size if xla else None)]
        fit_here = (recipe, head, precision) == (args.recipes[0], args.heads[0], args.precisions[0])
        if fit_here and batch_size in args.fit_batch_sizes:
            token_ids = random_token_ids(rng, batch_size * 64, args.sequence_length, args.vocabulary_size)
            seconds, steps, compile_seconds = time_fit(model, token_ids, batch_size)
            runs.append(dict(path="fit", seconds=seconds, steps=steps, compile_seconds=compile_seconds))
        for run in runs:
            sequences = batch_size / run["seconds"]
            run.update(recipe=recipe, head=head, precision=precision, batch_size=batch_size,
                       sequences_per_second=sequences,
                       tokens_per_second=sequences * args.sequence_length,
                       mfu=sequences * flops / (peak * 1e12))
            results["runs"].append(run)
            save()
            print(f"{recipe:<6}{head:<8}{precision:<16}{run['path']:<5} batch {batch_size:>5}: "
                  f"{run['seconds'] * 1e3:8.2f} ms/step {sequences:>10,.0f} seq/s  MFU {run['mfu']:6.1%}  "
                  f"(compile {run['compile_seconds']:.1f} s)", flush=True)
    if args.parity_data:
        params = read_yaml(Path(args.parity_params).read_text())
        results["parity"] = []
        for spec in args.parity_runs:
            precision, head = spec.split(":")
            results["parity"].append(parity_run(args.parity_data, params, args.parity_steps, params["SEED"],
                                                precision, head))
            print("parity:", json.dumps(results["parity"][-1]), flush=True)
            save()
    save()
    if args.out:
        print("wrote", args.out)
    return results


if __name__ == "__main__":
    main()

"""Parameters: checks inside the notebooks, and the runner's checks against the parameter cells."""

import re

import papermill
import pytest
import yaml

from nbhelpers.data import CORPORA
from nbhelpers.distribution import DISTRIBUTIONS
from nbhelpers.params import above, at_least, check_parameter, check_parameters, divisor_of
from nbhelpers.run import PROFILES_DIR, load_profile, notebook_paths, parse_value, split_parameters
from nbhelpers.schedules import SCHEDULES
from nbhelpers.training import PRECISIONS
from nbhelpers.word_vectors import EMBEDDING_STARTS


def test_check_parameter_says_what_is_wrong_and_what_is_allowed():
    check_parameter("EPOCHS", 3, int, at_least(1))
    check_parameter("RATE", 1, float, above(0, maximum=1))
    with pytest.raises(ValueError, match=r"EPOCHS = 0 is out of range: allowed values are >= 1\."):
        check_parameter("EPOCHS", 0, int, at_least(1))
    with pytest.raises(ValueError, match=r"MASK_RATE = 0.0 is out of range: allowed values are > 0 and <= 1\."):
        check_parameter("MASK_RATE", 0.0, float, above(0, maximum=1))
    with pytest.raises(ValueError, match=r"DROPOUT = 0.95 is out of range: allowed values are >= 0.0 and <= 0.9\."):
        check_parameter("DROPOUT", 0.95, float, at_least(0.0, maximum=0.9))
    with pytest.raises(ValueError, match=r"EPOCHS = '3' has type str; it must be a int\."):
        check_parameter("EPOCHS", "3", int)
    with pytest.raises(ValueError, match=r"EPOCHS = True has type bool"):
        check_parameter("EPOCHS", True, int)
    with pytest.raises(ValueError, match=r"MODE = 'c' is not allowed: choose one of \['a', 'b'\]\."):
        check_parameter("MODE", "c", str, ("a", "b"))


def _namespace(**values):
    """A notebook's globals after its parameters cell: the values and their declared types."""
    return {"__annotations__": {name: type(value) for name, value in values.items()}, **values}


def test_check_parameters_checks_every_declared_type_and_each_rule():
    namespace = _namespace(SEED=42, MODEL_DIM=32, NUM_HEADS=4, DROPOUT=0.1, MODE="a", NORMALIZE_FIRST=False)
    rules = {"SEED": at_least(0), "NUM_HEADS": divisor_of("MODEL_DIM"), "DROPOUT": at_least(0.0, maximum=0.9),
             "MODE": ("a", "b")}
    check_parameters(namespace, rules)
    # Another cell's annotation that is no plain type is not a parameter.
    check_parameters({**namespace, "__annotations__": {**namespace["__annotations__"], "sizes": list[int]}}, rules)
    # A papermill value replaces the parameters cell's and keeps its declared type: a wrong one fails,
    # also where no rule names the parameter.
    with pytest.raises(ValueError, match=r"NORMALIZE_FIRST = 'yes' has type str; it must be a bool\."):
        check_parameters({**namespace, "NORMALIZE_FIRST": "yes"}, rules)
    with pytest.raises(ValueError, match=r"SEED = -1 is out of range: allowed values are >= 0\."):
        check_parameters({**namespace, "SEED": -1}, rules)
    with pytest.raises(ValueError, match=r"MODE = 'c' is not allowed: choose one of \['a', 'b'\]\."):
        check_parameters({**namespace, "MODE": "c"}, rules)
    with pytest.raises(ValueError, match=r"DROPOUT = 1 is out of range"):
        check_parameters({**namespace, "DROPOUT": 1}, rules)  # an int is accepted for a float, and checked


def test_a_divisor_must_be_positive_and_divide_the_other_parameter():
    rules = {"NUM_HEADS": divisor_of("MODEL_DIM")}
    with pytest.raises(ValueError, match=r"NUM_HEADS = 3 must divide MODEL_DIM = 32\."):
        check_parameters(_namespace(MODEL_DIM=32, NUM_HEADS=3), rules)
    with pytest.raises(ValueError, match=r"NUM_HEADS = 64 must divide MODEL_DIM = 32\."):
        check_parameters(_namespace(MODEL_DIM=32, NUM_HEADS=64), rules)
    with pytest.raises(ValueError, match=r"NUM_HEADS = 0 is out of range: allowed values are >= 1\."):
        check_parameters(_namespace(MODEL_DIM=32, NUM_HEADS=0), rules)


def test_a_rule_for_an_undeclared_parameter_is_an_error_not_a_silent_pass():
    with pytest.raises(ValueError, match=r"EPOCHZ has no declared type"):
        check_parameters(_namespace(EPOCHS=3), {"EPOCHZ": at_least(1)})
    with pytest.raises(ValueError, match=r"NUM_HEADS must divide MODEL_DIMS, which is not a declared parameter"):
        check_parameters(_namespace(MODEL_DIM=32, NUM_HEADS=4), {"NUM_HEADS": divisor_of("MODEL_DIMS")})
    with pytest.raises(ValueError, match=r"EPOCHS is declared but has no value"):
        check_parameters({"__annotations__": {"EPOCHS": int}}, {})


def test_every_notebook_checks_its_parameters_in_one_call():
    import json

    for path in notebook_paths():
        code = ["".join(cell["source"]) for cell in json.loads(path.read_text())["cells"] if cell["cell_type"] == "code"]
        calls = sum(source.count("check_parameters(globals(),") for source in code)
        assert calls == 1, path.name
        assert not any("check_parameter(" in source for source in code), path.name


def _declared():
    return {
        name: spec
        for path in notebook_paths()
        for name, spec in papermill.inspect_notebook(str(path)).items()
    }


@pytest.mark.parametrize("name, choices", [
    ("PRECISION", PRECISIONS), ("CORPUS", CORPORA), ("VOCABULARY", ("file", "compute")),
    ("EMBEDDING_START", EMBEDDING_STARTS), ("PRETRAIN_SCHEDULE", SCHEDULES), ("DISTRIBUTION", DISTRIBUTIONS),
])
def test_a_choice_parameters_help_names_every_choice(name, choices):
    help_text = _declared()[name]["help"]
    assert [choice for choice in choices if not re.search(rf"\b{choice}\b", help_text)] == [], help_text


def test_every_notebook_parameter_is_a_typed_literal_with_help():
    for name, spec in _declared().items():
        assert spec["inferred_type_name"] in ("int", "float", "str", "bool"), name
        assert spec["help"], f"{name} has no help comment"
        yaml.safe_load(spec["default"])  # a literal, not an expression


def test_the_tiny_profile_equals_the_notebooks_defaults():
    defaults = {
        name: yaml.safe_load(spec["default"]) if spec["default"] != '""' else ""
        for name, spec in _declared().items()
        if name != "ARTIFACTS_DIR"
    }
    assert load_profile("tiny") == defaults


def test_every_profile_names_only_declared_parameters():
    for path in sorted(PROFILES_DIR.glob("*.yaml")):
        split_parameters(notebook_paths(), load_profile(path.stem))


def test_the_runner_rejects_unknown_names_and_wrong_types_before_running():
    paths = notebook_paths()
    with pytest.raises(SystemExit, match=r"Unknown parameter\(s\) \['EPOCHZ'\]\. The notebooks declare: .*PRETRAIN_EPOCHS"):
        split_parameters(paths, {"EPOCHZ": 3})
    with pytest.raises(SystemExit, match=r"PRETRAIN_EPOCHS = 'three' is a str; the notebooks expect int"):
        split_parameters(paths, {"PRETRAIN_EPOCHS": "three"})
    with pytest.raises(SystemExit, match="MASK_RATE = True is a bool"):
        split_parameters(paths, {"MASK_RATE": True})
    given = split_parameters(paths, {"MASK_RATE": 1, "SEED": 3})
    assert given[paths[1]] == {"MASK_RATE": 1, "SEED": 3} and given[paths[0]] == {"SEED": 3}


def test_profiles_and_values_from_the_command_line():
    assert parse_value("3") == 3 and parse_value("0.5") == 0.5 and parse_value("x") == "x"
    # Scientific notation is a float, as Python writes it (YAML 1.1 alone would give the string "1e-4").
    assert [parse_value(text) for text in ("1e-4", "7E-05", "-2.5e3", "1e5x")] == [1e-4, 7e-5, -2500.0, "1e5x"]
    assert parse_value("") == ""
    with pytest.raises(SystemExit, match="Profile 'nope' not found"):
        load_profile("nope")


def test_papermill_kernels_talk_over_socket_files_unique_to_each_kernel():
    """Two kernels starting at once (the two test workers) cannot pick the same TCP port or socket name."""
    import os

    from nbhelpers.run import KERNEL_MANAGER, LocalSocketKernelManager

    if os.name != "posix":
        assert KERNEL_MANAGER == {}
        return
    first, second = LocalSocketKernelManager(), LocalSocketKernelManager()
    assert first.transport == second.transport == "ipc"
    assert first.ip != second.ip and os.path.isabs(first.ip)
    assert first.ip == os.path.splitext(first.connection_file)[0] + "-ipc"

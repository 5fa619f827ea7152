"""Parameters: checks inside the notebooks, and the runner's checks against the parameter cells."""

import papermill
import pytest
import yaml

from nbhelpers.params import check_parameter
from nbhelpers.run import PROFILES_DIR, load_profile, notebook_paths, parse_value, split_parameters


def test_check_parameter_says_what_is_wrong_and_what_is_allowed():
    check_parameter("EPOCHS", 3, int, minimum=1)
    check_parameter("RATE", 1, float, minimum=0, exclusive_minimum=True, maximum=1)
    with pytest.raises(ValueError, match=r"EPOCHS = 0 is out of range: allowed values are >= 1\."):
        check_parameter("EPOCHS", 0, int, minimum=1)
    with pytest.raises(ValueError, match=r"MASK_RATE = 0.0 is out of range: allowed values are > 0 and <= 1\."):
        check_parameter("MASK_RATE", 0.0, float, minimum=0, exclusive_minimum=True, maximum=1)
    with pytest.raises(ValueError, match=r"EPOCHS = '3' has type str; it must be a int\."):
        check_parameter("EPOCHS", "3", int)
    with pytest.raises(ValueError, match=r"EPOCHS = True has type bool"):
        check_parameter("EPOCHS", True, int)
    with pytest.raises(ValueError, match=r"choose one of \['a', 'b'\]"):
        check_parameter("MODE", "c", str, choices=("a", "b"))


def _declared():
    return {
        name: spec
        for path in notebook_paths()
        for name, spec in papermill.inspect_notebook(str(path)).items()
    }


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

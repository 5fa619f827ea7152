"""Declared ranges, the exact versions `make` installs, and the conda file agree; the lower bounds resolve."""

import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from nbhelpers.colab import read_pyproject

ROOT = Path(__file__).resolve().parents[1]


def declared_requirements(pyproject=None):
    """Every requirement of the package and its extras that applies to this Python, as `Requirement`s."""
    project = (pyproject or read_pyproject())["project"]
    declared = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    return [r for r in map(Requirement, declared) if r.marker is None or r.marker.evaluate()]


def pinned_versions(path=ROOT / "constraints.txt"):
    """name -> exact version from a pip constraints file of `name==version` lines."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"constraints.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(requirement.name)] = Version(specifier.version)
    return pins


def lower_bound(requirement):
    """The version of a requirement's `>=` clause, or None."""
    return next((s.version for s in requirement.specifier if s.operator == ">="), None)


def test_every_declared_package_has_a_lower_bound_and_no_exact_pin():
    for requirement in declared_requirements():
        assert lower_bound(requirement), f"{requirement}: state the oldest version tested (>=)"
        assert not any(s.operator in ("==", "~=") for s in requirement.specifier), f"{requirement}: a range, not a pin"


def test_the_constraints_pin_every_declared_package_within_its_range():
    pins = pinned_versions()
    for requirement in declared_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"constraints.txt has no pin for {name}"
        assert requirement.specifier.contains(pins[name], prereleases=True), \
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject.toml's {requirement}"


def test_the_conda_environment_installs_the_same_as_make():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in environment["dependencies"] if isinstance(d, str)]
    pip_lines = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    python = next(d for d in conda if d.startswith("python="))
    requires_python = read_pyproject()["project"]["requires-python"]
    assert Requirement(f"python{requires_python}").specifier.contains(python.split("=")[1] + ".0")
    # The constraints are the versions tested on this Python (constraints.txt says which).
    assert python == "python=3.11" and "pip" in conda
    extras = sorted(read_pyproject()["project"]["optional-dependencies"])
    assert pip_lines == ["-c constraints.txt", f'-e ".[{",".join(extras)}]"'] or \
        pip_lines == ["-c constraints.txt", f"-e .[{','.join(extras)}]"], pip_lines
    makefile = (ROOT / "Makefile").read_text()
    assert "CONSTRAINTS ?= constraints.txt" in makefile and f'-e ".[{",".join(extras)}]"' in makefile


def _index_host():
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple")
    return urlsplit(index).hostname


def test_the_declared_lower_bounds_resolve_together(tmp_path):
    """pip resolves every dependency at its lower bound at once, without installing (metadata only)."""
    host = _index_host()
    try:
        socket.create_connection((host, 443), timeout=5).close()
    except OSError as error:
        pytest.skip(f"the package index {host} is not reachable ({error}): the lower bounds are "
                    "checked where it is")
    at_lower_bounds = []
    for requirement in declared_requirements():
        extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
        at_lower_bounds.append(f"{requirement.name}{extras}=={lower_bound(requirement)}")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--only-binary", ":all:", "--retries", "1", "--timeout", "60", *at_lower_bounds],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert done.returncode == 0, f"the lower bounds {at_lower_bounds} do not resolve:\n{done.stderr[-3000:]}"

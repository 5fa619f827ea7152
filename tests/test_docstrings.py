"""Every docstring example in the package (and in bench/benchlib.py) runs and shows what it prints."""

import doctest
import importlib
import os
import pkgutil
import sys
from pathlib import Path

import pytest

import nbhelpers

BENCH = Path(__file__).resolve().parents[1] / "bench"
MODULES = ["nbhelpers", *sorted(module.name for module in pkgutil.iter_modules(nbhelpers.__path__, "nbhelpers."))]


@pytest.mark.parametrize("name", [*MODULES, "benchlib"])
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    if name == "benchlib":
        monkeypatch.syspath_prepend(str(BENCH))
    module = importlib.import_module(name)
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    examples = 0
    environment = dict(os.environ)
    try:
        for test in finder.find(module):
            examples += len(test.examples)
            runner.run(test, out=sys.stdout.write)
    finally:  # an example that describes a job (TF_CONFIG) must not leave later tests inside it
        os.environ.clear()
        os.environ.update(environment)
    assert runner.failures == 0, f"{runner.failures} of {examples} examples in {name} failed (printed above)"

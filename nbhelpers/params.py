"""Checks for notebook parameters, run before any work so that a bad value fails at once.

Each notebook checks its parameters in one call: every parameter against the type its
parameters cell declares (`SEED: int = 42`), and those named in a small spec against their
range or choices. An error says what is wrong and what is allowed. `read_yaml` reads parameter
values as the runner, the profiles and the benches all read them.

Example:

>>> parameters = {"__annotations__": {"EPOCHS": int, "MASK_RATE": float, "MODE": str},
...               "EPOCHS": 3, "MASK_RATE": 0.0, "MODE": "fast"}
>>> check_parameters(parameters, {"EPOCHS": at_least(1), "MODE": ("fast", "slow")})
>>> check_parameters(parameters, {"MASK_RATE": above(0.0, maximum=1.0)})
Traceback (most recent call last):
ValueError: MASK_RATE = 0.0 is out of range: allowed values are > 0.0 and <= 1.0.
"""

import dataclasses
import re

import yaml

# Annotations written as strings (`from __future__ import annotations`) name these types.
TYPE_NAMES = {"int": int, "float": float, "str": str, "bool": bool}


@dataclasses.dataclass(frozen=True)
class Range:
    """Allowed numbers: from `minimum` (inclusive unless `exclusive_minimum`) to `maximum` (inclusive)."""

    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False


@dataclasses.dataclass(frozen=True)
class DivisorOf:
    """Allowed numbers: the positive divisors of the parameter named `name`."""

    name: str


def at_least(minimum, maximum=None):
    """Numbers from `minimum` (inclusive), and up to `maximum` where given.

    Example:

    >>> at_least(1)
    Range(minimum=1, maximum=None, exclusive_minimum=False)
    """
    return Range(minimum, maximum)


def above(minimum, maximum=None):
    """Numbers greater than `minimum`, and up to `maximum` (inclusive) where given.

    Example:

    >>> above(0.0, maximum=1.0)
    Range(minimum=0.0, maximum=1.0, exclusive_minimum=True)
    """
    return Range(minimum, maximum, exclusive_minimum=True)


def divisor_of(name):
    """Positive numbers that divide the parameter `name` (attention heads of a width).

    Example:

    >>> divisor_of("MODEL_DIM")
    DivisorOf(name='MODEL_DIM')
    """
    return DivisorOf(name)


def check_parameters(namespace, rules):
    """Raise `ValueError` for the first parameter of the wrong type, out of range or not a choice.

    Args:
        namespace: the notebook's `globals()`: its parameters, and their types in
            `__annotations__` (an annotated parameters cell, `SEED: int = 42`, puts them there;
            papermill's injected values replace the values and keep the types). Every annotated
            name is checked against its type; an int is accepted for a float, a bool for nothing else.
        rules: `{name: rule}` for the parameters that need more than a type; a rule is
            `at_least(...)`, `above(...)`, `divisor_of(...)`, or a collection of allowed values.

    Example:

    >>> check_parameters({"__annotations__": {"HEADS": int, "WIDTH": int}, "HEADS": 3, "WIDTH": 32},
    ...                  {"HEADS": divisor_of("WIDTH")})
    Traceback (most recent call last):
    ValueError: HEADS = 3 must divide WIDTH = 32.
    """
    kinds = namespace.get("__annotations__", {})
    for name in rules:
        if name not in kinds:
            raise ValueError(f"{name} has no declared type: the parameters cell must declare it as `{name}: int = ...`"
                             " (or float, str, bool).")
        if isinstance(rules[name], DivisorOf) and rules[name].name not in kinds:
            raise ValueError(f"{name} must divide {rules[name].name}, which is not a declared parameter.")
    for name, kind in kinds.items():
        kind = TYPE_NAMES.get(kind, kind)
        if not isinstance(kind, type):  # another cell's annotation, such as `sizes: list[int]`
            continue
        if name not in namespace:
            raise ValueError(f"{name} is declared but has no value: run the parameters cell first.")
        check_parameter(name, namespace[name], kind, rules.get(name))
    # Once every value has its type and range: the rules that relate two parameters.
    for name, rule in rules.items():
        if isinstance(rule, DivisorOf) and namespace[rule.name] % namespace[name]:
            raise ValueError(f"{name} = {namespace[name]!r} must divide {rule.name} = {namespace[rule.name]!r}.")


def check_parameter(name, value, kind, rule=None):
    """Raise `ValueError` saying what is wrong and what is allowed, unless `value` is valid.

    Args:
        name: the parameter's name, as the notebook spells it.
        value: its value.
        kind: the expected type (`int`, `float`, `str`, `bool`); an int is accepted for a float.
        rule: `None`, a `Range`, a `DivisorOf` (checked here for being positive; the division by
            `check_parameters`, which knows the other value), or a collection of allowed values.

    Example:

    >>> check_parameter("EPOCHS", "3", int)
    Traceback (most recent call last):
    ValueError: EPOCHS = '3' has type str; it must be a int.
    """
    accepted = (int, float) if kind is float else kind
    if isinstance(value, bool) and kind is not bool or not isinstance(value, accepted):
        raise ValueError(
            f"{name} = {value!r} has type {type(value).__name__}; it must be a {kind.__name__}."
        )
    if isinstance(rule, DivisorOf):
        rule = Range(minimum=1)
    if rule is None:
        return
    if not isinstance(rule, Range):
        if value not in rule:
            raise ValueError(f"{name} = {value!r} is not allowed: choose one of {list(rule)}.")
        return
    minimum, maximum = rule.minimum, rule.maximum
    too_low = minimum is not None and (value <= minimum if rule.exclusive_minimum else value < minimum)
    too_high = maximum is not None and value > maximum
    if too_low or too_high:
        bounds = []
        if minimum is not None:
            bounds.append(f"{'>' if rule.exclusive_minimum else '>='} {minimum}")
        if maximum is not None:
            bounds.append(f"<= {maximum}")
        raise ValueError(
            f"{name} = {value!r} is out of range: allowed values are {' and '.join(bounds)}."
        )


class _YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but `1e-4` is a float as in YAML 1.2 and Python (YAML 1.1 reads it as a
    string unless written `1.0e-4`)."""


_YamlLoader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
                                  list("-+.0123456789"))


def read_yaml(text):
    """Parameter values from YAML text, as a profile (`params/*.yaml`) or a `-p NAME VALUE` is read.

    PyYAML's safe loader, except that scientific notation is a float, as Python writes it.

    Args:
        text: YAML text.

    Example:

    >>> read_yaml("{PRETRAIN_LEARNING_RATE: 1e-4, SEED: 42}")
    {'PRETRAIN_LEARNING_RATE': 0.0001, 'SEED': 42}
    """
    return yaml.load(text, Loader=_YamlLoader)

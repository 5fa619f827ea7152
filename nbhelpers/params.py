"""Checks for notebook parameters, run before any work so a bad value fails at once.

Example:

>>> check_parameter("EPOCHS", 3, int, minimum=1)
>>> check_parameter("MASK_RATE", 0.0, float, minimum=0.0, exclusive_minimum=True, maximum=1.0)
Traceback (most recent call last):
ValueError: MASK_RATE = 0.0 is out of range: allowed values are > 0.0 and <= 1.0.
"""


def check_parameter(
    name, value, kind, minimum=None, maximum=None, exclusive_minimum=False, choices=None
):
    """Raise `ValueError` saying what is wrong and what is allowed, unless `value` is valid.

    Args:
        name: the parameter's name, as the notebook spells it.
        value: its value.
        kind: the expected type (`int`, `float`, `str`, `bool`); an int is accepted for a float.
        minimum, maximum: inclusive bounds, when given.
        exclusive_minimum: make `minimum` exclusive.
        choices: the allowed values, when given.
    """
    accepted = (int, float) if kind is float else kind
    if isinstance(value, bool) and kind is not bool or not isinstance(value, accepted):
        raise ValueError(
            f"{name} = {value!r} has type {type(value).__name__}; it must be a {kind.__name__}."
        )
    if choices is not None and value not in choices:
        raise ValueError(f"{name} = {value!r} is not allowed: choose one of {list(choices)}.")
    too_low = minimum is not None and (value <= minimum if exclusive_minimum else value < minimum)
    too_high = maximum is not None and value > maximum
    if too_low or too_high:
        bounds = []
        if minimum is not None:
            bounds.append(f"{'>' if exclusive_minimum else '>='} {minimum}")
        if maximum is not None:
            bounds.append(f"<= {maximum}")
        raise ValueError(
            f"{name} = {value!r} is out of range: allowed values are {' and '.join(bounds)}."
        )

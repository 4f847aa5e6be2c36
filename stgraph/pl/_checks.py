"""Checks shared by the plots."""
from __future__ import annotations

from collections.abc import Iterable


def known(parameter: str, requested: Iterable, available: Iterable, *, list_available: bool = False) -> list[str]:
    """``requested`` as strings, after checking that each is one of ``available``.

    Parameters
    ----------
    parameter
        Name of the argument that gave ``requested``, for the message.
    requested
        Names asked for (genes, cells).
    available
        Names the data has.
    list_available
        Also list (up to 10 of) ``available`` in the message, for short lists such
        as element keys.

    Raises
    ------
    TypeError
        If ``requested`` is one string (it would be read letter by letter).
    ValueError
        Naming the requested names the data does not have: a plot of them would be empty.
    """
    if isinstance(requested, str):
        raise TypeError(f"{parameter} must be a list of names, got the string {requested!r}: pass [{requested!r}]")
    requested = [str(r) for r in requested]
    available = {str(a) for a in available}
    unknown = [r for r in requested if r not in available]
    if unknown:
        message = f"{parameter}: not in the data: {unknown[:10]}" + (" ..." if len(unknown) > 10 else "")
        if list_available:
            names = sorted(available)
            message += f"; available: {names[:10]}" + (" ..." if len(names) > 10 else "")
        raise ValueError(message)
    return requested

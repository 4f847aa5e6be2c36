"""Checks shared by the plots."""
from __future__ import annotations

from collections.abc import Iterable


def known(parameter: str, requested: Iterable, available: Iterable) -> list[str]:
    """``requested`` as strings, after checking that each is one of ``available``.

    Parameters
    ----------
    parameter
        Name of the argument that gave ``requested``, for the message.
    requested
        Names asked for (genes, cells).
    available
        Names the data has.

    Raises
    ------
    ValueError
        Naming the requested names the data does not have: a plot of them would be empty.
    """
    requested = [str(r) for r in requested]
    available = {str(a) for a in available}
    unknown = [r for r in requested if r not in available]
    if unknown:
        raise ValueError(f"{parameter}: not in the data: {unknown[:10]}" + (" ..." if len(unknown) > 10 else ""))
    return requested

"""Benjamini-Hochberg false discovery rate."""
from __future__ import annotations

import numpy as np

from .._validation import check_int


def benjamini_hochberg(pval, n_tests: int | None = None) -> np.ndarray:
    r"""Benjamini-Hochberg adjusted p-values (q-values).

    .. math:: q_{(k)} = \min_{j \ge k} \min\!\left(1, \frac{m\, p_{(j)}}{j}\right)

    Parameters
    ----------
    pval
        P-values of the hypotheses that were computed.
    n_tests
        Total number of hypotheses ``m``; those not passed count as p = 1 (which
        leaves the q-values of the passed ones as if all ``m`` had been given).
        Default: ``len(pval)``.

    Returns
    -------
    Adjusted p-values in the order of ``pval``.

    Raises
    ------
    ValueError
        If ``pval`` is not one-dimensional or holds values outside ``[0, 1]`` (NaN
        included), or ``n_tests`` is smaller than ``len(pval)``.
    TypeError
        If ``n_tests`` is not an integer.
    """
    pval = np.asarray(pval, dtype=np.float64)
    if pval.ndim != 1:
        raise ValueError(f"pval must be one-dimensional, got shape {pval.shape}")
    if np.any(np.isnan(pval)) or np.any((pval < 0) | (pval > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    m = pval.size if n_tests is None else check_int("n_tests", n_tests, minimum=0)
    if m < pval.size:
        raise ValueError(f"n_tests={m} is smaller than the {pval.size} p-values given")
    if pval.size == 0:
        return pval.copy()
    order = np.argsort(pval, kind="stable")
    scaled = pval[order] * m / np.arange(1, pval.size + 1)
    adjusted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return out

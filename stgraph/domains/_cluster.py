"""Cluster transcript features into domains shared by all cells.

One clustering runs over the transcripts of every cell together, so a label means
the same domain in every cell.

**Choosing k.** With ``n_domains`` given, that many clusters are fitted. Otherwise
every ``k`` in ``k_range`` is fitted and the best kept:

- ``method="kmeans"``: the largest mean silhouette, computed on a fixed random
  sample of ``sample_size`` transcripts (the exact silhouette is quadratic in the
  number of transcripts);
- ``method="gmm"``: the lowest BIC of a diagonal-covariance Gaussian mixture.

Labels are renumbered by decreasing cluster size (0 = largest), so that they do
not depend on the solver's arbitrary cluster order.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.mixture import GaussianMixture

from .._validation import check_int, check_seed

ClusterMethod = Literal["kmeans", "gmm"]
#: k-means restarts (best inertia kept). With 4, the benchmark's composition + encoder
#: features of one simulation ended in a worse optimum (inertia 63,061 against 59,048;
#: ARI 0.36 against 0.79 with the planted domains); 10 reached the better one from every seed tried.
KMEANS_RESTARTS = 10


@dataclass(frozen=True)
class DomainClustering:
    """Domain labels and how ``k`` was chosen.

    Attributes
    ----------
    labels
        ``(N,)`` domain of each transcript, ``0 .. k - 1`` by decreasing size.
    n_domains
        The ``k`` used.
    criterion
        ``{k: value}`` of the selection criterion (silhouette or BIC) for each
        ``k`` tried; empty when ``k`` was given.
    """

    labels: np.ndarray
    n_domains: int
    criterion: dict[int, float] = field(default_factory=dict)


def _fit(features: np.ndarray, k: int, method: ClusterMethod, seed: int):
    if method == "kmeans":
        model = KMeans(n_clusters=k, n_init=KMEANS_RESTARTS, random_state=seed).fit(features)
        return model.labels_, model
    model = GaussianMixture(n_components=k, covariance_type="diag", random_state=seed, n_init=2)
    return model.fit(features).predict(features), model


def _by_size(labels: np.ndarray) -> np.ndarray:
    sizes = np.bincount(labels)
    order = np.lexsort((np.arange(sizes.size), -sizes))
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[labels]


def check_k_range(k_range) -> tuple[int, int]:
    """``k_range`` as ``(low, high)`` after checking that it is a pair of integers with
    ``2 <= low <= high``.

    Raises
    ------
    TypeError
        If ``k_range`` is a string or not iterable (a number, None), or holds a
        non-integer (a bool included).
    ValueError
        If it does not hold two values, or they are not ``2 <= low <= high``.
    """
    if isinstance(k_range, (str, bytes)) or not isinstance(k_range, Iterable):
        raise TypeError(f"k_range must be a pair (low, high) of integers, got {k_range!r}")
    pair = tuple(k_range)
    if len(pair) != 2:
        raise ValueError(f"k_range must be a pair (low, high) of integers, got {len(pair)} values: {k_range!r}")
    low, high = (check_int(f"k_range[{i}]", value, minimum=2) for i, value in enumerate(pair))
    if low > high:
        raise ValueError(f"k_range must satisfy low <= high, got {k_range!r}")
    return low, high


def check_clustering_arguments(
    n_domains: int | None, k_range: tuple[int, int], method: ClusterMethod, sample_size: int
) -> tuple[int, int]:
    """Raise a ValueError or TypeError naming the first invalid argument of
    :func:`cluster_domains`; return ``k_range`` checked (:func:`check_k_range`).

    ``k_range`` and ``sample_size`` (a positive integer) are checked even where
    they are unused (``n_domains`` given; a mixture), so that a malformed one is
    never recorded as a setting. When k-means chooses ``k``, ``sample_size`` must be
    at least ``k_range[1] + 1``, the fewest transcripts on which the silhouette of
    ``k_range[1]`` clusters is defined.
    """
    if method not in ("kmeans", "gmm"):
        raise ValueError(f"method must be 'kmeans' or 'gmm', got {method!r}")
    k_range = check_k_range(k_range)
    check_int("sample_size", sample_size)
    if n_domains is not None:
        check_int("n_domains", n_domains)
    elif method == "kmeans" and sample_size <= k_range[1]:
        raise ValueError(
            f"sample_size must be an integer of at least k_range[1] + 1 = {k_range[1] + 1} (the silhouette "
            f"of {k_range[1]} clusters needs more transcripts than clusters), got {sample_size!r}"
        )
    return k_range


def cluster_domains(
    features: np.ndarray,
    n_domains: int | None = None,
    *,
    k_range: tuple[int, int] = (2, 8),
    method: ClusterMethod = "kmeans",
    sample_size: int = 5000,
    seed: int = 0,
) -> DomainClustering:
    """Cluster transcripts into domains, choosing ``k`` when not given.

    Parameters
    ----------
    features
        ``(N, d)`` transcript features.
    n_domains
        Number of domains; None chooses it in ``k_range`` (inclusive).
    k_range
        Smallest and largest ``k`` tried: two integers, ``2 <= low <= high``.
    method
        ``"kmeans"`` (k chosen by silhouette) or ``"gmm"`` (k chosen by BIC).
    sample_size
        Transcripts on which the silhouette is computed (k-means choosing ``k``): at
        least ``k_range[1] + 1``.
    seed
        Non-negative seed of the solver and of the silhouette sample.

    Raises
    ------
    ValueError
        If an argument is invalid (:func:`check_clustering_arguments`) or there are
        too few transcripts, or too few distinct feature rows, for ``n_domains`` or
        ``k_range`` (``k`` above the number of distinct rows is not tried).
    TypeError
        If ``k_range``, ``n_domains``, ``sample_size`` or ``seed`` is not of integers.
    """
    low, high = check_clustering_arguments(n_domains, k_range, method, sample_size)
    check_seed(seed)
    features = np.asarray(features, dtype=np.float64)
    n = features.shape[0]
    # More clusters than distinct feature rows leave some empty: domains without a
    # transcript, which the solver only warns of.
    distinct = np.unique(features, axis=0).shape[0] if n else 0
    if n_domains is not None:
        if n_domains > n:
            raise ValueError(f"cannot make {n_domains} domains out of {n} transcripts")
        if n_domains > distinct:
            raise ValueError(
                f"cannot make {n_domains} domains out of {n} transcripts whose features take only {distinct} "
                f"distinct values (transcripts with the same neighbourhood fall in one domain): give at most "
                f"{distinct}"
            )
        labels, _ = _fit(features, int(n_domains), method, seed)
        return DomainClustering(labels=_by_size(labels), n_domains=int(n_domains))

    high = min(high, n - 1, distinct)
    if high < low:
        raise ValueError(
            f"{n} transcripts ({distinct} distinct feature values) are too few to choose k in {k_range}"
        )
    sample = np.random.default_rng(seed).choice(n, size=min(sample_size, n), replace=False)
    criterion: dict[int, float] = {}
    best = None
    for k in range(low, high + 1):
        labels, model = _fit(features, k, method, seed)
        if method == "kmeans":
            value = (
                float(silhouette_score(features[sample], labels[sample]))
                if np.unique(labels[sample]).size > 1
                else -1.0
            )
            better = best is None or value > best[0]
        else:
            value = float(model.bic(features))
            better = best is None or value < best[0]
        criterion[k] = value
        if better:
            best = (value, k, labels)
    return DomainClustering(labels=_by_size(best[2]), n_domains=best[1], criterion=criterion)

"""Low-rank expression embedding of spots (truncated SVD of log1p(CP10k))."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.utils.extmath import randomized_svd


@dataclass(frozen=True)
class LowRankEmbedding:
    """Orthonormal gene loadings and per-component standardisation of the scores.

    Scores are ``values @ components`` (uncentred, as in truncated SVD) and are
    standardised with ``mean`` and ``scale`` per component, so models see inputs of
    unit scale; :meth:`expression` maps the first ``r`` standardised scores back to
    genes, i.e. the rank-``r`` reconstruction.
    """

    components: np.ndarray  # (n_genes, k)
    mean: np.ndarray  # (k,)
    scale: np.ndarray  # (k,)

    @classmethod
    def fit(cls, values: np.ndarray, n_components: int, seed: int = 0) -> "LowRankEmbedding":
        """Top ``n_components`` right singular vectors of ``values`` (spots × genes).

        Genes that are zero on every spot get exactly zero loadings (the randomized
        solver leaves round-off there), so they are reconstructed as exactly zero.
        """
        k = max(1, min(n_components, *values.shape))
        _, _, vt = randomized_svd(values.astype(np.float32), k, n_iter=6, random_state=seed)
        vt[:, ~values.any(axis=0)] = 0.0
        scores = values @ vt.T
        scale = scores.std(axis=0)
        return cls(vt.T.astype(np.float32), scores.mean(axis=0), np.where(scale > 0, scale, 1.0))

    @property
    def n_components(self) -> int:
        return self.components.shape[1]

    def scores(self, values: np.ndarray) -> np.ndarray:
        """Standardised scores ``(n, k)`` of expression ``values``."""
        return ((values @ self.components - self.mean) / self.scale).astype(np.float32)

    def expression(self, scores: np.ndarray) -> np.ndarray:
        """Expression ``(n, n_genes)`` from the first ``scores.shape[1]`` standardised scores."""
        r = scores.shape[1]
        return (scores * self.scale[:r] + self.mean[:r]) @ self.components[:, :r].T

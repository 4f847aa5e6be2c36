r"""Null distribution of edge mass under random relabelling of genes within cells.

For a pair ``(A, B)`` the edge mass is :math:`M_{AB} = \sum_c \sum_{j \to i \in c}
w_{ij} [g_i = A][g_j = B]`. The null keeps the graph and its weights and permutes
the gene labels uniformly at random within every cell (cells independently), so
each cell keeps its gene counts.

**Analytic moments.** In a cell with ``n`` transcripts, ``a`` of gene A and ``b``
of gene B, write :math:`(x)_k` for the falling factorial and, over the cell's
edges, :math:`S_0 = \sum w_{ij}`, :math:`S_2 = \sum w_{ij}^2`,
:math:`S_\leftrightarrow = \sum w_{ij} w_{ji}`, :math:`R = \sum_i r_i^2`,
:math:`C = \sum_j c_j^2`, :math:`Q = \sum_v r_v c_v` with :math:`r_i = \sum_j
w_{ij}` (weight given by target ``i``) and :math:`c_j = \sum_i w_{ij}` (weight
received by source ``j``). Classifying pairs of edges by which end-points they
share gives, for :math:`A \ne B`,

.. math::

    E[M] &= S_0 \frac{ab}{(n)_2}, \\
    E[M^2] &= S_2 \frac{ab}{(n)_2} + (R - S_2) \frac{a (b)_2}{(n)_3}
             + (C - S_2) \frac{(a)_2 b}{(n)_3} + T \frac{(a)_2 (b)_2}{(n)_4},

and for :math:`A = B`

.. math::

    E[M] &= S_0 \frac{(a)_2}{(n)_2}, \\
    E[M^2] &= (S_2 + S_\leftrightarrow) \frac{(a)_2}{(n)_2}
            + (R + C + 2Q - 2 S_2 - 2 S_\leftrightarrow) \frac{(a)_3}{(n)_3}
            + T \frac{(a)_4}{(n)_4},

with :math:`T = S_0^2 + S_2 + S_\leftrightarrow - R - C - 2Q` the weight of edge
pairs with four distinct end-points. Cells are independent, so means and
variances add over the cells that hold both genes.

**Permutation.** Alternatively the labels are shuffled ``n_perms`` times and
the masses of the observed pairs recomputed; the p-value is
:math:`(1 + \#\{M^{(r)} \ge M\}) / (1 + n_{perms})`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse, special

from ._edges import CellEdges
from ._shared import SharedCells, walk_shared_cells

#: Relative tolerance when comparing a permuted mass with the observed one.
_TIE_TOLERANCE = 1e-9
#: Variances below this fraction of the squared mean are round-off of E[M^2] - E[M]^2.
_ROUND_OFF = 1e-12


@dataclass(frozen=True)
class NullMoments:
    """Mean and variance of the edge mass of each pair under relabelling."""

    mean: np.ndarray
    var: np.ndarray


def _falling(x: np.ndarray, k: int) -> np.ndarray:
    out = np.ones_like(x, dtype=np.float64)
    for step in range(k):
        out = out * (x - step)
    return out


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    # A falling factorial of n below k vanishes together with the edge weight it
    # multiplies (too few transcripts for k distinct end-points): 0 / 0 := 0.
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, 0.0)


def pair_probability(n: np.ndarray, a: np.ndarray, b: np.ndarray, same: np.ndarray) -> np.ndarray:
    """Chance that an edge's target is A and its source B after relabelling a cell."""
    return _ratio(np.where(same, _falling(a, 2), a * b), _falling(n, 2))


def cell_weight_sums(edges: CellEdges, weight: np.ndarray) -> dict[str, np.ndarray]:
    """Per-cell sums :math:`S_0, S_2, S_\\leftrightarrow, R, C, Q` of the docstring."""
    n_nodes, n_cells = edges.gene.size, edges.n_cells
    src, dst, cell = edges.src, edges.dst, edges.cell

    def per_cell(values: np.ndarray, at: np.ndarray) -> np.ndarray:
        return np.bincount(at, weights=values, minlength=n_cells)

    given = np.bincount(dst, weights=weight, minlength=n_nodes)
    received = np.bincount(src, weights=weight, minlength=n_nodes)
    node_cell = np.maximum(edges.cell_of, 0)  # nodes outside cells have r = c = 0

    matrix = sparse.csr_matrix((weight, (dst, src)), shape=(n_nodes, n_nodes))
    reciprocal = np.asarray(matrix.multiply(matrix.T).sum(axis=1)).ravel()
    return {
        "s0": per_cell(weight, cell),
        "s2": per_cell(weight**2, cell),
        "srev": per_cell(reciprocal, node_cell),
        "r": per_cell(given**2, node_cell),
        "c": per_cell(received**2, node_cell),
        "q": per_cell(given * received, node_cell),
    }


class MomentSums:
    """Mean and second moment of each pair's mass, summed over the shared cells
    fed to :meth:`add` (see :func:`~stgraph.coloc._shared.walk_shared_cells`)."""

    def __init__(self, edges: CellEdges, weight: np.ndarray, gene_a: np.ndarray, gene_b: np.ndarray):
        sums = cell_weight_sums(edges, weight)
        self._size = edges.cell_sizes()
        self._s0, self._s2, self._srev, self._r, self._c, self._q = (
            sums[k] for k in ("s0", "s2", "srev", "r", "c", "q")
        )
        self._four_distinct = self._s0**2 + self._s2 + self._srev - self._r - self._c - 2 * self._q
        self._same = gene_a == gene_b
        self._mean = np.zeros(gene_a.size)
        self._second = np.zeros(gene_a.size)

    def add(self, chunk: SharedCells) -> None:
        k = chunk.cell
        n, a, b = self._size[k], chunk.count_a, chunk.count_b
        s0, s2, srev = self._s0[k], self._s2[k], self._srev[k]
        r, c, q, four_distinct = self._r[k], self._c[k], self._q[k], self._four_distinct[k]
        n3, n4 = _falling(n, 3), _falling(n, 4)
        self_pair = self._same[chunk.pair]
        p2 = pair_probability(n, a, b, self_pair)
        first = s0 * p2
        distinct = (
            s2 * p2
            + (r - s2) * _ratio(a * _falling(b, 2), n3)
            + (c - s2) * _ratio(_falling(a, 2) * b, n3)
            + four_distinct * _ratio(_falling(a, 2) * _falling(b, 2), n4)
        )
        diagonal = (
            (s2 + srev) * p2
            + (r + c + 2 * q - 2 * s2 - 2 * srev) * _ratio(_falling(a, 3), n3)
            + four_distinct * _ratio(_falling(a, 4), n4)
        )
        moment2 = np.where(self_pair, diagonal, distinct)
        self._mean += np.bincount(chunk.pair, weights=first, minlength=self._mean.size)
        self._second += np.bincount(chunk.pair, weights=moment2 - first**2, minlength=self._mean.size)

    def moments(self) -> NullMoments:
        mean, second = self._mean, self._second
        # A mass that relabelling cannot change (every transcript of the cell neighbours
        # every other: duplicate points, small cells) leaves round-off of either sign,
        # which the p-value read as a null of tiny spread centred on M: p = 0.5, not 1.
        return NullMoments(mean=mean, var=np.where(second > _ROUND_OFF * mean**2, second, 0.0))


def analytic_moments(
    edges: CellEdges, weight: np.ndarray, gene_a: np.ndarray, gene_b: np.ndarray
) -> NullMoments:
    """Exact mean and variance of each pair's edge mass under within-cell relabelling."""
    sums = MomentSums(edges, weight, gene_a, gene_b)
    walk_shared_cells(edges, gene_a, gene_b, sums.add)
    return sums.moments()


def dispersion(moments: NullMoments, fallback: float | None = None) -> np.ndarray:
    """Quasi-Poisson dispersion ``phi = Var / E`` of each pair's null mass.

    ``M / phi`` has equal mean and variance (``E / phi``): it counts the mass in
    "effective events". Pairs whose null has no mean or no variance get
    ``fallback``, by default the median dispersion of the others (1 when there are none).
    """
    mean, var = moments.mean, moments.var
    valid = (mean > 0) & (var > 0)
    phi = np.divide(var, mean, out=np.zeros_like(var), where=valid)
    if fallback is None:
        fallback = float(np.median(phi[valid])) if valid.any() else 1.0
    return np.where(valid, phi, fallback)


def quasi_poisson_sf(observed: np.ndarray, moments: NullMoments) -> np.ndarray:
    """Upper-tail p-value of a mass under a Poisson law rescaled to the null moments.

    ``M / phi`` is treated as Poisson with mean ``E / phi``, ``phi = Var / E``, which
    matches both moments and keeps the right skew of sparse pairs that a normal
    approximation would miss; the tail :math:`P(X \\ge m)` is the regularised
    incomplete gamma function, continuous in ``m``.
    """
    mean, var = moments.mean, moments.var
    degenerate = (mean <= 0) | (var <= 0)
    phi = dispersion(moments, fallback=1.0)
    shape = observed / phi
    p = special.gammainc(np.maximum(shape, 1e-300), np.where(degenerate, 1.0, mean / phi))
    p = np.where(observed <= 0, 1.0, p)
    # Without variance the null is a point mass at its mean.
    return np.where(degenerate, np.where(observed > mean * (1 + _TIE_TOLERANCE), 0.0, 1.0), p)


#: Largest pair-code space indexed through a dense lookup table.
_DENSE_LOOKUP = 1 << 24


def _pair_lookup(pair: np.ndarray, n_genes: int):
    """Map pair codes to their index in the sorted ``pair`` (``-1``: not observed)."""
    if n_genes**2 <= _DENSE_LOOKUP:
        table = np.full(n_genes**2, -1, dtype=np.int64)
        table[pair] = np.arange(pair.size)
        return lambda code: table[code]

    def search(code: np.ndarray) -> np.ndarray:
        at = np.minimum(np.searchsorted(pair, code), max(pair.size - 1, 0))
        found = pair[at] == code if pair.size else np.zeros(code.size, bool)
        return np.where(found, at, -1)

    return search


@dataclass(frozen=True)
class PermutationNull:
    """Permutation mean, variance and upper-tail p-value of each pair's mass."""

    mean: np.ndarray
    var: np.ndarray
    pval: np.ndarray


def permutation_null(
    edges: CellEdges,
    weight: np.ndarray,
    pair: np.ndarray,
    observed: np.ndarray,
    n_perms: int,
    rng: np.random.Generator,
) -> PermutationNull:
    """Shuffle genes within cells ``n_perms`` times and recompute the masses of ``pair``.

    ``pair`` holds sorted pair codes; masses of pairs not in it are never stored.
    Each permutation draws one uniform number per transcript in node order, so the
    shuffles depend on the transcripts' order but not on how the cells are numbered.
    """
    gene = edges.gene.copy()
    members = np.flatnonzero(edges.cell_of >= 0)
    member_cells = edges.cell_of[members].astype(np.float64)
    by_cell = members[np.argsort(member_cells, kind="stable")]
    lookup = _pair_lookup(pair, edges.n_genes)
    exceed = np.zeros(pair.size)
    total = np.zeros(pair.size)
    total_sq = np.zeros(pair.size)
    for _ in range(n_perms):
        # cell + U(0, 1) sorts the cells' blocks as by_cell does and shuffles within each;
        # drawn in node order, a cell's shuffle does not move when the cells are renumbered
        shuffled = members[np.argsort(member_cells + rng.random(members.size))]
        gene[by_cell] = edges.gene[shuffled]
        at = lookup(gene[edges.dst] * edges.n_genes + gene[edges.src])
        hit = at >= 0
        mass = np.bincount(at[hit], weights=weight[hit], minlength=pair.size)
        exceed += mass >= observed * (1 - _TIE_TOLERANCE)
        total += mass
        total_sq += mass**2
    mean = total / n_perms
    var = np.maximum(total_sq / n_perms - mean**2, 0.0)
    return PermutationNull(mean=mean, var=var, pval=(1 + exceed) / (1 + n_perms))

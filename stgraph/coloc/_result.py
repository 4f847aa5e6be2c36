"""Result of a colocalization analysis: pair table, gene x gene matrix, gene graph."""
from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
from scipy import sparse

from .._validation import check_bool, check_names, check_real

#: Columns of the pair table, one row per ordered gene pair joined by an edge.
PAIR_COLUMNS = (
    "gene_a",  # gene of the target transcript (the one that looks)
    "gene_b",  # gene of its neighbour
    "score",  # log2 (observed + k) / (expected + k) edge mass
    "clq",  # Leslie-Kronenfeld colocation quotient, pooled over cells
    "z",  # (observed - expected) / sd of the mass under relabelling
    "pval",  # one-sided p-value of the mass
    "fdr",  # Benjamini-Hochberg of pval
    "n_cells",  # cells where the pair shares at least one edge
    "clq_bento",  # Bento's colocation quotient, pooled over cells
    "binom_pval",  # proximal-pairs binomial test, pooled over cells
    "binom_fdr",  # Benjamini-Hochberg of binom_pval over unordered pairs
    "mass",  # observed edge mass
    "expected",  # its expectation under relabelling within cells
)
#: Columns of the optional per-cell table, one row per (cell, ordered pair) on an edge.
PER_CELL_COLUMNS = ("cell", "gene_a", "gene_b", "mass", "expected", "clq", "clq_bento", "binom_pval")


def check_fdr(fdr: Any) -> float:
    """``fdr`` as a float after checking that it is a number in ``[0, 1]``.

    Raises
    ------
    TypeError
        If ``fdr`` is not a real number (None included).
    ValueError
        If it is NaN or outside ``[0, 1]``.
    """
    # Unchecked, a string or None failed inside pandas, and NaN or a negative
    # threshold silently kept no pair.
    fdr = check_real("fdr", fdr, allow_zero=True)
    if fdr > 1:
        raise ValueError(f"fdr must be at most 1, got {fdr}")
    return fdr


@dataclass
class ColocalizationResult:
    """Colocalization statistics of gene pairs.

    Attributes
    ----------
    table
        One row per ordered gene pair ``(gene_a, gene_b)`` joined by at least one
        within-cell edge; columns :data:`PAIR_COLUMNS`.
    genes
        Gene vocabulary (categories of ``gene_a`` / ``gene_b``).
    params
        How the statistics were computed.
    per_cell
        Optional per-cell table, columns :data:`PER_CELL_COLUMNS`.
    """

    table: pd.DataFrame
    genes: pd.Index
    params: dict[str, Any] = field(default_factory=dict)
    per_cell: pd.DataFrame | None = None

    def _check_column(self, column: str) -> None:
        if column not in self.table.columns or column in ("gene_a", "gene_b"):
            numeric = [c for c in self.table.columns if c not in ("gene_a", "gene_b")]
            raise ValueError(f"unknown value column {column!r}; choose one of {numeric}")

    def _gene_positions(self, genes: Sequence[str] | None) -> pd.Index:
        if genes is None:
            used = np.union1d(self.table["gene_a"].cat.codes, self.table["gene_b"].cat.codes)
            return self.genes[used]
        wanted = pd.Index(check_names("genes", genes, self.genes))
        if wanted.has_duplicates:
            raise ValueError(f"genes names some genes more than once: {sorted(set(wanted[wanted.duplicated()]))[:10]}")
        return wanted

    def matrix(
        self,
        value: str = "score",
        *,
        genes: Sequence[str] | None = None,
        fill: float = np.nan,
        as_sparse: bool = False,
    ) -> pd.DataFrame | sparse.csr_matrix:
        """Genes x genes matrix of one column, rows ``gene_a``, columns ``gene_b``.

        Parameters
        ----------
        value
            Column of :attr:`table`.
        genes
            Rows and columns, in this order (a list of distinct genes of the
            result); default every gene in the table, in vocabulary order.
        fill
            Entry of pairs absent from the table (never joined by an edge).
        as_sparse
            Return a :class:`scipy.sparse.csr_matrix` (absent pairs are implicit
            zeros, ``fill`` is ignored) whose order is ``genes``; memory is then
            linear in the number of pairs.

        Raises
        ------
        ValueError
            If ``value`` is not a numeric column, or ``genes`` is empty or names
            genes not in the result or a gene twice.
        TypeError
            If ``genes`` is a single string or ``as_sparse`` is not a bool.
        """
        as_sparse = check_bool("as_sparse", as_sparse)
        self._check_column(value)
        order = self._gene_positions(genes)
        position = pd.Series(np.arange(order.size), index=order)
        rows = position.reindex(self.table["gene_a"].astype(str)).to_numpy()
        cols = position.reindex(self.table["gene_b"].astype(str)).to_numpy()
        inside = ~(np.isnan(rows) | np.isnan(cols))
        rows, cols = rows[inside].astype(np.int64), cols[inside].astype(np.int64)
        values = self.table[value].to_numpy(dtype=np.float64)[inside]
        if as_sparse:
            return sparse.csr_matrix((values, (rows, cols)), shape=(order.size, order.size))
        dense = np.full((order.size, order.size), fill, dtype=np.float64)
        dense[rows, cols] = values
        return pd.DataFrame(dense, index=order.rename("gene_a"), columns=order.rename("gene_b"))

    def significant(self, fdr: float = 0.05, *, column: str = "fdr") -> pd.DataFrame:
        """Rows with ``column <= fdr``, by decreasing ``score``.

        Parameters
        ----------
        fdr
            Threshold, a number in ``[0, 1]``.
        column
            Column the threshold applies to (``"fdr"``, ``"binom_fdr"``, ...).

        Raises
        ------
        TypeError
            If ``fdr`` is not a real number (None included).
        ValueError
            If ``fdr`` is NaN or outside ``[0, 1]``, or ``column`` is not a numeric column.
        """
        fdr = check_fdr(fdr)
        self._check_column(column)
        kept = self.table[self.table[column] <= fdr]
        return kept.sort_values("score", ascending=False, kind="stable")

    def to_networkx(
        self, *, fdr: float | None = 0.05, column: str = "fdr", self_loops: bool = False
    ) -> nx.DiGraph:
        """Gene graph: one node per gene, one edge ``gene_a -> gene_b`` per kept pair.

        Parameters
        ----------
        fdr
            Keep pairs with ``column <= fdr``; None keeps every pair of the table.
        column
            Column the threshold applies to (``"fdr"``, ``"binom_fdr"``, ...);
            checked also when ``fdr`` is None.
        self_loops
            Keep ``(A, A)`` pairs (a gene clustering with itself) as self-loops.

        Returns
        -------
        A :class:`networkx.DiGraph` whose edges carry every numeric column of the
        table as attributes and whose nodes are all genes of the table.

        Raises
        ------
        ValueError
            If ``column`` is not a numeric column, or ``fdr`` is NaN or outside ``[0, 1]``.
        TypeError
            If ``self_loops`` is not a bool or ``fdr`` is neither None nor a real number.
        """
        self_loops = check_bool("self_loops", self_loops)
        self._check_column(column)  # also when fdr=None leaves it unused: a typo is not ignored
        table = self.table if fdr is None else self.significant(fdr, column=column)
        if not self_loops:
            table = table[table["gene_a"].astype(str) != table["gene_b"].astype(str)]
        graph = nx.DiGraph()
        graph.add_nodes_from(self._gene_positions(None))
        attributes = [c for c in self.table.columns if c not in ("gene_a", "gene_b")]
        records = table[attributes].to_dict("records")
        graph.add_edges_from(
            zip(table["gene_a"].astype(str), table["gene_b"].astype(str), records)
        )
        return graph

    def to_uns(self, uns: MutableMapping, key: str) -> None:
        """Store under ``uns[key]`` (pair table), ``uns[key + '_params']`` and,
        when present, ``uns[key + '_per_cell']``; a per-cell table of an earlier
        result under the same key is removed, never left beside this one.

        Parameters
        ----------
        uns
            The mapping written in place, e.g. a table's ``.uns``; the tables are
            stored as they are, not copied.
        key
            Key of the pair table and prefix of the other two entries.
        """
        uns[key] = self.table
        uns[f"{key}_params"] = {**self.params, "genes": np.asarray(self.genes, dtype=str)}
        if self.per_cell is not None:
            uns[f"{key}_per_cell"] = self.per_cell
        else:
            uns.pop(f"{key}_per_cell", None)

    @classmethod
    def from_uns(cls, uns: MutableMapping, key: str = "colocalization") -> "ColocalizationResult":
        """Rebuild a result stored by :meth:`to_uns`.

        Parameters
        ----------
        uns
            The mapping :meth:`to_uns` wrote into; not modified.
        key
            The key it was given.

        Raises
        ------
        KeyError
            If ``uns`` holds no ``key`` or no ``key + '_params'``.
        """
        if key not in uns or f"{key}_params" not in uns:
            raise KeyError(f"no colocalization result under uns[{key!r}]; run stgraph.tl.colocalization")
        params = dict(uns[f"{key}_params"])
        # anndata >= 0.12 reads the names back from zarr / h5ad as numpy StringDType,
        # which does not cast to a fixed-width str array.
        genes = pd.Index([str(g) for g in params.pop("genes")], dtype=object)
        return cls(
            table=uns[key], genes=genes, params=params, per_cell=uns.get(f"{key}_per_cell")
        )

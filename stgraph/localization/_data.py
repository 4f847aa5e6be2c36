"""The transcripts of a sample, grouped by cell and by (cell, gene)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from stgraph._warnings import warn_user
from stgraph.io import transcripts_frame
from stgraph.io._schema import NUCLEUS_SHAPES_KEY
from stgraph.io._spatialdata import check_aligned, optional_shapes, outline_geometry

from ._geometry import CellGeometry, TranscriptGeometry, cell_geometry, transcript_geometry


@dataclass
class CellTranscripts:
    """Transcripts that lie in an outlined cell, with their cell's geometry.

    Attributes
    ----------
    xy
        ``(N, 2)`` coordinates of the kept transcripts.
    index
        Position of each kept transcript in the original points table.
    cell
        Position of each transcript's cell in :attr:`geometry`.
    gene
        Gene code of each transcript, into :attr:`gene_names`.
    gene_names
        All genes of the sample (controls included), in categorical order.
    geometry
        Cell and nucleus outlines.
    n_points
        Number of rows of the original points table.
    """

    xy: np.ndarray
    index: np.ndarray
    cell: np.ndarray
    gene: np.ndarray
    gene_names: pd.Index
    geometry: CellGeometry
    n_points: int

    @cached_property
    def transcript_geometry(self) -> TranscriptGeometry:
        return transcript_geometry(self.xy, self.cell, self.geometry)

    def groups(self, min_transcripts: int = 1) -> "CellGeneGroups":
        """(cell, gene) groups with at least ``min_transcripts`` transcripts.

        Parameters
        ----------
        min_transcripts
            Smallest number of transcripts a group keeps; the transcripts of smaller
            groups get ``member == -1`` in the :class:`CellGeneGroups`.
        """
        return CellGeneGroups.from_codes(self.cell, self.gene, len(self.gene_names), min_transcripts)


@dataclass(frozen=True)
class CellGeneGroups:
    """Transcripts grouped by (cell, gene).

    Attributes
    ----------
    cell, gene
        ``(G,)`` cell position and gene code of each group.
    n_transcripts
        ``(G,)`` transcripts per group.
    member
        ``(N,)`` group of each transcript, ``-1`` for transcripts of groups that
        were dropped for having fewer than the minimum count.
    """

    cell: np.ndarray
    gene: np.ndarray
    n_transcripts: np.ndarray
    member: np.ndarray

    @classmethod
    def from_codes(cls, cell: np.ndarray, gene: np.ndarray, n_genes: int, min_transcripts: int):
        """Group transcripts by their (cell, gene) codes, groups ordered by cell, then gene.

        Parameters
        ----------
        cell, gene
            ``(N,)`` integer cell position and gene code of each transcript (``>= 0``).
        n_genes
            Number of genes; every gene code is below it.
        min_transcripts
            Smallest group kept (see :attr:`member`).
        """
        key = cell.astype(np.int64) * n_genes + gene
        unique, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
        keep = counts >= min_transcripts
        new_id = np.where(keep, np.cumsum(keep) - 1, -1)
        return cls(
            cell=(unique[keep] // n_genes).astype(np.int64),
            gene=(unique[keep] % n_genes).astype(np.int64),
            n_transcripts=counts[keep],
            member=new_id[inverse],
        )

    def __len__(self) -> int:
        return len(self.cell)


def cell_transcripts(
    points: pd.DataFrame,
    cells: pd.Series,
    nuclei: pd.Series | None = None,
    *,
    x: str = "x",
    y: str = "y",
    gene: str = "gene",
    cell_id: str = "cell_id",
) -> CellTranscripts:
    """Keep the transcripts assigned to an outlined cell and measure the cells.

    Parameters
    ----------
    points
        One row per transcript with coordinate, gene and cell-id columns.
    cells, nuclei
        Outline polygons indexed by cell id (see :func:`cell_geometry`).
    x, y, gene, cell_id
        Column names in ``points``.

    Returns
    -------
    :class:`CellTranscripts` of the transcripts assigned to a cell of ``cells``.

    Raises
    ------
    ValueError
        If a column is missing, the outlines are invalid (:func:`cell_geometry`), or
        a transcript in a cell has a non-finite coordinate.

    Warns
    -----
    UserWarning
        When transcripts are assigned to cell ids that have no outline in ``cells``:
        they are left out (their cells are not scored), and the warning names how
        many such cells there are, with examples.
    """
    missing = [c for c in (x, y, gene, cell_id) if c not in points.columns]
    if missing:
        raise ValueError(f"transcripts: missing column(s) {missing}")
    geometry = cell_geometry(cells, nuclei)
    genes = points[gene].astype("category")
    ids = points[cell_id]
    cell_pos = geometry.cell_ids.get_indexer(ids.astype(str).to_numpy())
    unassigned = ids.isna().to_numpy()
    cell_pos[unassigned] = -1
    without_outline = pd.unique(ids[(cell_pos < 0) & ~unassigned].astype(str))
    if len(without_outline):
        warn_user(
            f"{len(without_outline)} cell(s) have transcripts but no outline, so they are not scored: "
            f"{sorted(without_outline)[:5]}"
        )
    gene_codes = genes.cat.codes.to_numpy()
    kept = np.flatnonzero((cell_pos >= 0) & (gene_codes >= 0))
    xy = points[[x, y]].to_numpy(dtype=np.float64)[kept]
    if not np.isfinite(xy).all():
        raise ValueError("transcripts: non-finite coordinates in assigned transcripts")
    return CellTranscripts(
        xy=xy,
        index=kept,
        cell=cell_pos[kept].astype(np.int64),
        gene=gene_codes[kept].astype(np.int64),
        gene_names=pd.Index(genes.cat.categories.astype(str)),
        geometry=geometry,
        n_points=len(points),
    )


def nucleus_outlines(sdata, nucleus_key: str | None, points_key: str):
    """The geometry of the nucleus outlines ``sdata.shapes[nucleus_key]``, or None for
    no nuclei (:func:`stgraph.io._spatialdata.optional_shapes`: None when the key is
    None, or the default and absent; a ValueError for any other missing name, or
    outlines that do not align with the points ``points_key``).
    """
    outlines = optional_shapes(sdata, nucleus_key, NUCLEUS_SHAPES_KEY, "nucleus_key", points_key)
    return None if outlines is None else outline_geometry(outlines, nucleus_key)


def read_cell_transcripts(
    sdata,
    *,
    points_key: str = "transcripts",
    cell_key: str = "cell_boundaries",
    nucleus_key: str | None = NUCLEUS_SHAPES_KEY,
) -> tuple[pd.DataFrame, CellTranscripts]:
    """Points table and :class:`CellTranscripts` of a SpatialData object, with the
    nucleus outlines of :func:`nucleus_outlines`.

    Parameters
    ----------
    sdata
        SpatialData object with the transcripts and cell outlines; not modified.
    points_key
        Points element of the transcripts, read by :func:`stgraph.io.transcripts_frame`.
    cell_key
        Shapes element of the cell outlines (required).
    nucleus_key
        Shapes element of the nucleus outlines; None for none, and the default name
        ``"nucleus_boundaries"`` may be absent (then no nuclei).

    Returns
    -------
    ``(points, cell_transcripts)``: the points table as
    :func:`stgraph.io.transcripts_frame` returns it, and the :class:`CellTranscripts`
    of its transcripts in outlined cells.

    Raises
    ------
    TypeError
        If ``nucleus_key`` is neither a string nor None.
    KeyError
        If ``points_key`` is not a points element of ``sdata``.
    ValueError
        If ``cell_key`` is not a shapes element, ``nucleus_key`` is neither None, the
        default name nor a shapes element, the outlines do not align with the points
        (:func:`stgraph.io._spatialdata.check_aligned`), or for the problems of
        :func:`stgraph.io.transcripts_frame` and :func:`cell_transcripts`.
    """
    if cell_key not in sdata.shapes:
        raise ValueError(
            f"sdata has no shapes element {cell_key!r} (cell outlines are required; where the data have "
            "none, stgraph.io.outlines_from_transcripts draws them around each cell's molecules)"
        )
    points = transcripts_frame(sdata, points_key=points_key)
    check_aligned(sdata, cell_key, points_key)
    nuclei = nucleus_outlines(sdata, nucleus_key, points_key)
    return points, cell_transcripts(points, outline_geometry(sdata.shapes[cell_key], cell_key), nuclei)

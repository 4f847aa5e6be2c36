"""The cells × genes table that tools write their per-cell and per-gene results into."""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from spatialdata import SpatialData
from spatialdata.models import TableModel

from ._schema import CELL, CELL_SHAPES_KEY, GENE, IS_CONTROL, POINTS_KEY, X, Y, control_mask
from ._spatialdata import check_element_name, check_spatialdata, optional_shapes, transcripts_frame

TABLE_KEY = "table"


def cell_gene_table(
    sdata: SpatialData, points_key: str = POINTS_KEY, cell_key: str | None = CELL_SHAPES_KEY
) -> AnnData:
    """Count the molecules of each gene in each cell.

    Parameters
    ----------
    sdata
        Data in the stgraph schema; not modified.
    points_key
        Name of the points element.
    cell_key
        Shapes element of the cell outlines, whose ids are those of ``cell_id``;
        ``None`` for none (the default ``cell_boundaries`` may be absent).

    Returns
    -------
    :class:`anndata.AnnData` with one row per cell that has molecules or a cell
    outline (``obs_names`` the cell ids, in the order of the ``cell_id`` categories,
    then outlined cells that are no category in the order of the outlines; categories
    with neither, e.g. left unused by a crop, are left out) and one column
    per gene (in the order of the ``gene`` categories); ``X`` the sparse ``float32``
    counts (unassigned molecules are not counted), ``obs['cell_id']`` the cell id
    (categorical), ``obs['n_transcripts']`` the molecules of each cell (the row sums of
    ``X``), ``obsm['spatial']`` the centroid of each cell's molecules in µm (of its
    outline for a cell without molecules), ``var['is_control']`` whether the gene is a
    control probe (its molecules flagged ``is_control``, or its name that of a control
    as the readers flag them: ``NegPrb*``, ``BLANK*``, ...), e.g. for
    ``scanpy.pp.calculate_qc_metrics(table, qc_vars=['is_control'], percent_top=None)``
    (its default ``percent_top`` refuses panels of fewer than 500 genes) or
    ``table[:, ~table.var['is_control']]`` (a subset for analysis: the tools write
    into a table holding every gene, :func:`check_table`). With cell outlines the table is annotated
    to them in the SpatialData way (``uns['spatialdata_attrs']``: region ``cell_key``,
    ``obs['region']``, instance key ``obs['cell_id']``, which then holds the ids as
    labelled in the outlines' index: integers when that index holds integers, so that
    SpatialData's joins and queries match the rows).

    Raises
    ------
    TypeError
        If ``cell_key`` is neither a string nor None.
    ValueError
        If ``cell_key`` is neither ``None``, ``cell_boundaries`` nor a shapes element.
    """
    frame = transcripts_frame(sdata, points_key=points_key)
    genes = frame[GENE].cat.categories.astype(str)
    categories = frame[CELL].cat.categories.astype(str)
    code = frame[CELL].cat.codes.to_numpy()
    assigned = code >= 0
    outlines = optional_shapes(sdata, cell_key, CELL_SHAPES_KEY, "cell_key")
    # A row for every cell with molecules or an outline; a category with neither (left
    # unused by a crop, say) has no position and is no cell of these data.
    n_per_category = np.bincount(code[assigned], minlength=len(categories))
    outline_ids = pd.Index([], dtype=object) if outlines is None else outlines.index.astype(str)
    kept = np.flatnonzero((n_per_category > 0) | categories.isin(outline_ids))
    # Outlined cells without a molecule need not be categories of cell_id: rows after the rest.
    outline_only = outline_ids[~outline_ids.isin(categories)].unique()
    cells = categories[kept].append(outline_only)
    row = np.searchsorted(kept, code[assigned])
    col = frame[GENE].cat.codes.to_numpy()[assigned]
    counts = sp.csr_matrix(
        (np.ones(len(row), dtype=np.float32), (row, col)), shape=(len(cells), len(genes))
    )
    counts.sum_duplicates()
    n_per_cell = np.r_[n_per_category[kept], np.zeros(len(outline_only), dtype=n_per_category.dtype)]
    with np.errstate(invalid="ignore"):
        centroid = np.stack(
            [np.bincount(row, weights=frame[a].to_numpy()[assigned], minlength=len(cells)) for a in (X, Y)],
            axis=1,
        ) / n_per_cell[:, None]
    empty = n_per_cell == 0
    if empty.any():  # cells without molecules sit at their outline's centroid
        shapes = outlines.geometry.set_axis(outlines.index.astype(str)).loc[cells[empty]].centroid
        centroid[empty] = np.column_stack([shapes.x, shapes.y])
    instances = cells if outlines is None else _outline_labels(cells, outlines.index)
    obs = pd.DataFrame({CELL: pd.Categorical(instances), "n_transcripts": n_per_cell}, index=cells)
    table = AnnData(X=counts, obs=obs, var=pd.DataFrame({IS_CONTROL: _control_genes(frame, genes)}, index=genes))
    table.obsm["spatial"] = centroid
    if outlines is not None:
        table.obs["region"] = pd.Categorical([cell_key] * len(cells))
        table = TableModel.parse(table, region=cell_key, region_key="region", instance_key=CELL)
    return table


def _control_genes(frame: pd.DataFrame, genes: pd.Index) -> np.ndarray:
    """Whether each gene of ``genes`` (the ``gene`` categories of ``frame``) is a control
    probe: its molecules are flagged (readers also flag probes that no name prefix
    catches), or its name is a control's (a gene without molecules here, e.g. after a crop)."""
    flagged = frame[IS_CONTROL].to_numpy(dtype=bool)
    codes = frame[GENE].cat.codes.to_numpy()
    by_molecule = np.bincount(codes[flagged & (codes >= 0)], minlength=len(genes)) > 0
    return control_mask(genes) | by_molecule


def _outline_labels(cells: pd.Index, outline_index: pd.Index) -> pd.Index:
    """The cell ids ``cells`` (strings) as labels of the outlines' index.

    SpatialData matches a table's instance ids to the outlines' index by value, so with
    integer outline labels the ids must be integers too; ids that are not the string of
    an integer (a cell without outline, say) leave them all strings.
    """
    if not pd.api.types.is_integer_dtype(outline_index.dtype):
        return cells
    try:
        labels = cells.astype(outline_index.dtype)
    except (TypeError, ValueError, OverflowError):
        return cells
    return labels if (labels.astype(str) == cells).all() else cells


def get_table(
    sdata: SpatialData,
    table_key: str = TABLE_KEY,
    points_key: str = POINTS_KEY,
    cell_key: str | None = CELL_SHAPES_KEY,
) -> AnnData:
    """Return ``sdata.tables[table_key]``, first adding :func:`cell_gene_table` if absent.

    Tools of :mod:`stgraph.tl` write their per-cell and per-gene results into this
    table; adding it is the one change made to ``sdata`` here.

    Parameters
    ----------
    sdata
        The SpatialData object.
    table_key
        Name of the table in ``sdata.tables``.
    points_key
        Points element whose cells and genes the table must cover.
    cell_key
        Cell outlines a new table is annotated to, see :func:`cell_gene_table`.

    Raises
    ------
    TypeError
        If ``sdata`` is not a SpatialData, or ``cell_key`` is neither a string nor None.
    KeyError
        If ``points_key`` is not a points element of ``sdata`` (naming the points
        there are).
    ValueError
        If an existing table does not cover the data, or ``table_key`` cannot name a
        new table, see :func:`check_table`; or ``cell_key`` names no shapes element.
    """
    check_table(sdata, table_key, points_key)
    return ensure_table(sdata, table_key, points_key, cell_key)


def ensure_table(
    sdata: SpatialData,
    table_key: str = TABLE_KEY,
    points_key: str = POINTS_KEY,
    cell_key: str | None = CELL_SHAPES_KEY,
) -> AnnData:
    """:func:`get_table` without checking an existing table: for tools that ran
    :func:`check_table` before their work (it reads the points), so as not to read them
    again when writing."""
    if table_key not in sdata.tables:
        sdata.tables[table_key] = cell_gene_table(sdata, points_key=points_key, cell_key=cell_key)
    return sdata.tables[table_key]


def check_table(sdata: SpatialData, table_key: str = TABLE_KEY, points_key: str = POINTS_KEY) -> None:
    """Check that an existing ``sdata.tables[table_key]`` can hold results on the transcripts.

    Its cells (the table's ``instance_key`` column, else ``obs_names``) must include every
    cell id that has a molecule in ``points_key``, and its ``var_names`` every gene that
    has one; extra cells and genes are allowed. A table annotated to outlines in the
    SpatialData way (its ``region`` shapes elements of ``sdata``, as the tools' tables
    are) need not hold the cells without an outline there: SpatialData's queries (e.g.
    :func:`spatialdata.bounding_box_query`) drop the rows of such cells, and the tools
    write per-cell results only for outlined cells. When the table is absent, ``table_key``
    must be a name SpatialData can give a new table (valid, and held by no other element,
    ignoring case), so that a tool refuses it before its work rather than at its write.

    Parameters
    ----------
    sdata
        The SpatialData object.
    table_key
        Name of the table in ``sdata.tables``.
    points_key
        Points element whose cells and genes the table must cover.

    Raises
    ------
    TypeError
        If ``sdata`` is not a SpatialData, or ``table_key`` is not a string.
    KeyError
        If the table exists and ``points_key`` is not a points element of ``sdata``
        (naming the points there are).
    ValueError
        Naming how many cells / genes are missing, with examples; or naming
        ``table_key`` when SpatialData would refuse it for a new table.
    """
    check_spatialdata(sdata)
    if table_key not in sdata.tables:
        check_element_name(sdata, table_key, "table_key", kind="tables")
        return
    cells, genes = _present_cells_and_genes(sdata, points_key)
    table = sdata.tables[table_key]
    outlined = _annotated_outline_ids(sdata, table)
    if outlined is not None:
        cells = cells[cells.isin(outlined)]
    missing_cells = cells[~cells.isin(table_cell_ids(table))]
    missing_genes = genes[~genes.isin(pd.Index(table.var_names).astype(str))]
    problems = [
        f"{len(missing)} {what} of the transcripts missing from its {where} (e.g. {missing[:5].tolist()})"
        for missing, what, where in ((missing_cells, "cell(s)", "obs"), (missing_genes, "gene(s)", "var"))
        if len(missing)
    ]
    if problems:
        raise ValueError(
            f"table {table_key!r} does not match the points {points_key!r}: {'; '.join(problems)}. "
            f"Delete sdata.tables[{table_key!r}] or pass a table_key that is not in sdata.tables "
            "to get a fresh cells x genes table"
        )


def table_cell_ids(table: AnnData) -> pd.Index:
    """The cell id of each row of a table: its SpatialData ``instance_key`` column where
    it has one, else ``obs_names``, as strings."""
    instance_key = table.uns.get("spatialdata_attrs", {}).get("instance_key")
    cells = table.obs[instance_key] if instance_key in table.obs else table.obs_names
    return pd.Index(cells).astype(str)


def region_rows(table: AnnData, region: str) -> np.ndarray:
    """Mask of the rows of ``table`` that hold the cells of the element ``region``.

    A table annotating several elements in the SpatialData way (e.g. joined from
    samples by :func:`spatialdata.concatenate`) tells their rows apart by its
    ``region_key`` column, and a cell id may repeat in another sample: only the rows of
    ``region`` are its cells. Every row where the table annotates ``region`` alone, or
    does not annotate it (its rows are then matched by cell id).
    """
    region_key = table.uns.get("spatialdata_attrs", {}).get("region_key")
    if region not in _table_regions(table) or region_key not in table.obs:
        return np.ones(table.n_obs, dtype=bool)
    return (table.obs[region_key].astype(str) == region).to_numpy()


def _table_regions(table: AnnData) -> list[str]:
    """The elements ``table`` annotates (its SpatialData ``region``), as a list."""
    regions = table.uns.get("spatialdata_attrs", {}).get("region")
    return [regions] if isinstance(regions, str) else list(regions if regions is not None else [])


def _annotated_outline_ids(sdata: SpatialData, table: AnnData) -> pd.Index | None:
    """The ids (strings) of the outlines that ``table`` annotates: those of its
    SpatialData ``region`` elements that are shapes of ``sdata``; None when it annotates
    none there (a plain table, or one whose outlines are gone)."""
    shapes = [sdata.shapes[region].index.astype(str) for region in _table_regions(table) if region in sdata.shapes]
    if not shapes:
        return None
    return shapes[0].append(shapes[1:])


def _present_cells_and_genes(sdata: SpatialData, points_key: str) -> tuple[pd.Index, pd.Index]:
    """The cell ids and genes that have at least one molecule."""
    element = sdata.points.get(points_key)
    if element is None or CELL not in element.columns or GENE not in element.columns:
        transcripts_frame(sdata, points_key=points_key)  # raises its error for a missing or non-schema element
    frame = element[[CELL, GENE]].compute()
    return _present(frame[CELL]), _present(frame[GENE])


def _present(values: pd.Series) -> pd.Index:
    values = values.astype("category")
    codes = values.cat.codes.to_numpy()
    return pd.Index(values.cat.categories[np.unique(codes[codes >= 0])]).astype(str)

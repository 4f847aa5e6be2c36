"""Turn a transcript table of any origin into the ``transcripts`` schema of :mod:`._schema`."""
from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd

from ._schema import CELL, GENE, IN_NUCLEUS, IS_CONTROL, NUCLEUS, X, Y, Z, control_mask

_SCHEMA_NAMES = (X, Y, Z, GENE, CELL, NUCLEUS, IN_NUCLEUS)


def standardise_points(
    frame: pd.DataFrame,
    *,
    x: str | pd.Series,
    y: str | pd.Series,
    gene: str | pd.Series,
    z: str | pd.Series | None = None,
    cell: str | pd.Series | None = None,
    nucleus: str | pd.Series | None = None,
    in_nucleus: str | pd.Series | None = None,
    pixel_size: float = 1.0,
    z_step: float = 1.0,
    unassigned: Collection = (),
    drop_controls: bool = False,
) -> pd.DataFrame:
    """Return a new frame with the schema columns first and every other column after.

    The source columns named by ``x`` ... ``in_nucleus`` are replaced by their schema
    columns. Each of them may instead be a Series on ``frame``'s index holding values
    derived from it (a reader's computed cell ids, say), which replaces no column. All
    other columns are kept unchanged, except a boolean ``is_control`` column,
    which is combined (logical or) with the control flags from the gene names. ``frame``
    itself is not modified. A unique index is kept, and rows are sorted by it (stably) if
    it is not increasing, as :class:`spatialdata.models.PointsModel` requires. An index
    with repeats (e.g. a dask frame of partitions each indexed from 0) is no order and
    names no row: the rows keep their order and are numbered 0, 1, ... afresh, and a
    named index stays a column of its name (see :func:`_renumbered`).
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    _check_unassigned(unassigned)
    _check_sources({"x": x, "y": y, "gene": gene}, {"z": z, "cell": cell, "nucleus": nucleus, "in_nucleus": in_nucleus})
    # Every column is kept in the points, and SpatialData's points take string labels on a flat index.
    unnamed = [column for column in frame.columns if not isinstance(column, str)]
    if unnamed:
        raise TypeError(
            f"column labels must be strings, got {unnamed[:5]}; "
            "name the columns with strings first, e.g. frame.columns = frame.columns.astype(str)"
        )
    repeated = frame.columns[frame.columns.duplicated()].unique().tolist()
    if repeated:
        # frame[label] would be a frame of every such column, not one series
        raise ValueError(f"column label(s) {repeated} appear more than once in the transcript table; rename them first")
    if isinstance(frame.index, pd.MultiIndex):
        raise TypeError(f"the frame has a MultiIndex {list(frame.index.names)}; flatten it first, e.g. frame.reset_index()")
    axes = [column for column in (x, y, z) if isinstance(column, str)]
    repeated = sorted({column for column in axes if axes.count(column) > 1})
    if repeated:
        raise ValueError(f"column(s) {repeated} given for more than one of x, y, z (x={x!r}, y={y!r}, z={z!r})")
    given = {X: x, Y: y, Z: z, GENE: gene, CELL: cell, NUCLEUS: nucleus, IN_NUCLEUS: in_nucleus}
    mapping = {key: column for key, column in given.items() if isinstance(column, str)}
    missing = sorted({column for column in mapping.values() if column not in frame.columns})
    if missing:
        # Name the role too: the column may have been given under another option (--z of the command).
        roles = ", ".join(f"{column!r} as {key}" for key, column in mapping.items() if column in missing)
        raise ValueError(
            f"transcript table lacks the column(s) {missing} (read {roles}); it has {list(frame.columns)}"
        )
    if len(frame) == 0:
        raise ValueError("transcript table has no rows")
    consumed = set(mapping.values())
    clashes = [c for c in frame.columns if c in _SCHEMA_NAMES and c not in consumed]
    if clashes:
        raise ValueError(
            f"column(s) {clashes} carry schema names but are not mapped to them; "
            "map them (x=..., gene=..., ...) or rename them first"
        )

    def values(key: str) -> pd.Series:
        """The values of schema field ``key``, named as errors should call them."""
        source = given[key]
        return frame[source] if isinstance(source, str) else source.rename(key)

    out = pd.DataFrame(index=frame.index)
    for key, scale in ((X, pixel_size), (Y, pixel_size), (Z, z_step)):
        if given[key] is not None:
            out[key] = _coordinate(values(key), scale)
    out[GENE] = _genes(values(GENE))
    out[CELL] = _ids(values(CELL), unassigned) if cell is not None else _no_ids(len(frame))
    nucleus_ids = _ids(values(NUCLEUS), unassigned) if nucleus is not None else None
    if in_nucleus is not None:
        out[IN_NUCLEUS] = flag_values(values(IN_NUCLEUS))
    elif nucleus_ids is not None:
        out[IN_NUCLEUS] = nucleus_ids.notna()
    if nucleus_ids is not None:
        out[NUCLEUS] = nucleus_ids
    is_control = control_mask(out[GENE].cat.categories)[out[GENE].cat.codes.to_numpy()]
    if IS_CONTROL in frame.columns and IS_CONTROL not in consumed:
        is_control |= flag_values(frame[IS_CONTROL])
    out[IS_CONTROL] = is_control
    for column in frame.columns:
        if column not in consumed and column != IS_CONTROL:
            out[column] = frame[column]

    if drop_controls:
        out = out.loc[~out[IS_CONTROL].to_numpy()]
        if len(out) == 0:
            raise ValueError("every transcript is a control probe; nothing left after drop_controls")
        out[GENE] = out[GENE].cat.remove_unused_categories()
    if not out.index.is_unique:
        return _renumbered(out)
    if not out.index.is_monotonic_increasing:
        out = out.sort_index(kind="stable")
    return out


def _renumbered(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (not modified) in its row order, numbered 0, 1, ... afresh.

    For an index with repeats: sorting by it would interleave the rows of the pieces
    that repeat it (the partitions of a dask frame each indexed from 0, as
    spatialdata-io's MERSCOPE reader makes, or tables concatenated), so the row order
    is the only order there is. A named index holds data: it becomes the last column.
    An unnamed one held each piece's row numbers, which the kept row order still tells.

    Raises
    ------
    TypeError
        If the index is named by something other than a string (column labels are strings).
    ValueError
        If the index is named like a column of ``frame``, which it would replace.
    """
    name = frame.index.name
    out = frame.reset_index(drop=True)
    if name is None:
        return out
    if not isinstance(name, str):
        raise TypeError(f"the index has repeated values and is named {name!r}: name it with a string to keep it "
                        "as a column, or drop it (frame.reset_index(drop=True))")
    if name in frame.columns:
        raise ValueError(
            f"the index {name!r} has repeated values, so the points are numbered afresh and it would become "
            f"a column, but a column {name!r} exists; rename the index or drop it (frame.reset_index(drop=True))"
        )
    out[name] = frame.index.to_numpy()
    return out


def _check_unassigned(unassigned) -> None:
    """Raise a TypeError unless ``unassigned`` is a collection of id values, not a string."""
    if isinstance(unassigned, (str, bytes)):
        # a string is a collection of its characters: "UNASSIGNED" would match the ids "U", "N", ...
        raise TypeError(f"unassigned must be a collection of id values, e.g. [{unassigned!r}], not a string")
    if not isinstance(unassigned, Collection):
        example = "[] for none" if unassigned is None else f"[{unassigned!r}]"
        raise TypeError(f"unassigned must be a collection of id values, e.g. {example}, got {unassigned!r}")


def _check_sources(required: dict, optional: dict) -> None:
    """Raise a TypeError unless each source is a column name or a Series (or None, if optional)."""
    for name, source in (required | optional).items():
        if isinstance(source, (str, pd.Series)) or (source is None and name in optional):
            continue
        hint = (
            "; name the columns with strings first, e.g. frame.columns = frame.columns.astype(str)"
            if source is not None else ""
        )
        raise TypeError(f"{name} must be a column name (a string), got {source!r}{hint}")


def check_numeric(values: pd.Series) -> None:
    """Raise a TypeError unless the coordinate column ``values`` is numeric (not boolean,
    nor complex, whose imaginary part a float conversion would drop)."""
    types = pd.api.types
    if not types.is_numeric_dtype(values) or types.is_bool_dtype(values) or types.is_complex_dtype(values):
        raise TypeError(f"coordinate column {values.name!r} must be numeric, got dtype {values.dtype}")


def _coordinate(values: pd.Series, scale: float) -> np.ndarray:
    name = values.name
    check_numeric(values)
    array = values.to_numpy(dtype=np.float64, na_value=np.nan) * scale
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(
            f"coordinate column {name!r} has {int(bad.sum())} non-finite value(s) "
            f"(first at row {_row_label(values.index, np.argmax(bad))!r})"
        )
    return array


def _row_label(index: pd.Index, position: int):
    """The label of row ``position``, a NumPy scalar as its Python value: messages
    read "row 6", not "row np.int64(6)"."""
    label = index[position]
    return label.item() if isinstance(label, np.generic) else label


def _genes(values: pd.Series) -> pd.Categorical:
    name = values.name
    genes = _ids(values, ())
    if genes.isna().any():
        raise ValueError(f"gene column {name!r} has {int(genes.isna().sum())} missing value(s)")
    # an empty or blank name is a missing one written as text; it would become a gene "" in the table
    blank = np.array([category.strip() == "" for category in genes.categories], dtype=bool)[genes.codes]
    if blank.any():
        raise ValueError(
            f"gene column {name!r} has {int(blank.sum())} empty or blank name(s) "
            f"(first at row {_row_label(values.index, np.argmax(blank))!r})"
        )
    return genes


def _ids(values: pd.Series, unassigned: Collection) -> pd.Categorical:
    """Categorical of id strings, NaN for missing or ``unassigned`` values."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes, uniques = values.cat.codes.to_numpy(), values.cat.categories
    else:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    strings = as_id_strings(pd.Index(uniques, name=values.name))
    # compared as the ids are, so that 0, 0.0 and "0" all mean the id "0"
    valid = ~strings.isin([as_id_strings(pd.Index([value]))[0] for value in unassigned])
    # distinct values may print alike (1 and "1"), hence the second factorisation
    categories, inverse = np.unique(strings[valid].to_numpy(dtype=object).astype(str), return_inverse=True)
    remap = np.full(len(strings) + 1, -1, dtype=np.int64)
    remap[np.flatnonzero(valid)] = inverse
    return pd.Categorical.from_codes(remap[codes], categories=_id_categories(categories))  # -1 -> remap[-1] = -1


#: Floats hold every integer only below this magnitude (2**53 + 1 is stored as 2**53).
_EXACT_FLOAT_LIMIT = 2**53


def as_id_strings(values: pd.Index) -> pd.Index:
    """Ids as strings: integral floats without ``.0``, bytes decoded.

    Raises
    ------
    ValueError
        For float ids of magnitude 2**53 or more, naming the index (``values.name``):
        there a float cannot hold every integer, so the id may already be another one.
    """
    if pd.api.types.is_float_dtype(values):
        _check_exact_floats(values)
        if np.all(np.mod(values, 1) == 0):
            values = values.astype(np.int64)  # ids read as floats: 12.0 -> "12"
    if values.dtype == object and len(values) and isinstance(values[0], bytes):
        return pd.Index([v.decode() for v in values])
    return values.astype(str)


def _check_exact_floats(values: pd.Index) -> None:
    """Raise a ValueError if a float id in ``values`` is too large to be exact."""
    inexact = np.abs(values.to_numpy()) >= _EXACT_FLOAT_LIMIT
    if inexact.any():
        where = "" if values.name is None else f" of {values.name!r}"
        example = float(values[np.argmax(inexact)])
        raise ValueError(
            f"{int(inexact.sum())} id(s){where} are floats of magnitude 2**53 or more (e.g. {example!r}), "
            "which cannot hold every integer: the ids may have been rounded. Pass them as strings or "
            "integers (read a CSV with dtype={column: str})"
        )


def _id_categories(ids: np.ndarray | list) -> pd.Index:
    """Categories of the id strings ``ids``; typed ``string`` when there are none.

    An empty object-dtype index tells no type: the zarr store's parquet then types
    the column null, which reading the store back refuses ("categories cannot be null").
    """
    return pd.Index(ids, dtype=object) if len(ids) else pd.Index([], dtype="string")


def _no_ids(n: int) -> pd.Categorical:
    return pd.Categorical.from_codes(np.full(n, -1), categories=_id_categories([]))


def flag_values(values: pd.Series, *, missing_false: bool = False) -> np.ndarray:
    """The flag column ``values`` (booleans or 0/1) as a bool array.

    Missing values are refused, or with ``missing_false`` read as False.

    Raises
    ------
    ValueError
        For missing values (unless ``missing_false``) or values other than booleans
        or 0/1: strings such as ``"False"`` would all be True.
    """
    missing = values.isna().to_numpy()
    if missing.any() and not missing_false:
        raise ValueError(f"column {values.name!r} must hold booleans or 0/1 without missing values")
    present = values[~missing]
    kind = pd.api.types.infer_dtype(present, skipna=True)
    if not (kind in ("boolean", "empty") or (kind in ("integer", "floating") and present.isin([0, 1]).all())):
        raise ValueError(
            f"column {values.name!r} must hold booleans or 0/1, got {kind} values (dtype {values.dtype})"
        )
    flags = np.zeros(len(values), dtype=bool)
    flags[~missing] = present.to_numpy() == 1
    return flags

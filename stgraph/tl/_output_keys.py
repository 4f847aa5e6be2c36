"""Names under which the tools write: never those of the data they read."""
from __future__ import annotations

from collections.abc import Collection, Sequence

from .._validation import check_key
from ..io import _schema as S
from ..io._spatialdata import check_valid_name

#: Points columns of the schema: the transcripts themselves.
SCHEMA_COLUMNS = frozenset(S.COLUMNS)
#: Shapes elements of the schema: the cell and nucleus outlines.
SCHEMA_SHAPES = frozenset({S.CELL_SHAPES_KEY, S.NUCLEUS_SHAPES_KEY})
#: Keys of a table's ``uns`` that SpatialData reserves (the table's annotation).
RESERVED_UNS = frozenset({"spatialdata_attrs"})


def check_output_key(
    parameter: str, key: str, reserved: Collection[str], where: str, suffixes: Sequence[str] = ("",)
) -> None:
    """Refuse an output name ``key`` that would overwrite a ``reserved`` name.

    Parameters
    ----------
    parameter
        Name of the argument that gave ``key``, for the message.
    key
        The output name.
    reserved
        Names that must not be written.
    where
        What ``reserved`` names, for the message (``"points column"``, ...).
    suffixes
        The tool writes ``key + suffix`` for each of these.

    Raises
    ------
    TypeError
        If ``key`` is not a string.
    ValueError
        If ``key`` is empty or one of the names written is reserved.
    """
    check_key(parameter, key)
    if not key:
        raise ValueError(f"{parameter} must not be empty")
    clashes = sorted({key + suffix for suffix in suffixes} & set(reserved))
    if clashes:
        raise ValueError(
            f"{parameter}={key!r} would overwrite the {where} {clashes[0]!r} of the data; choose another name"
        )


def check_uns_key(parameter: str, key: str, suffixes: Sequence[str], uns: Collection[str] = ()) -> None:
    """Refuse a name ``key`` whose table ``uns`` keys ``key + suffix`` SpatialData
    would not save.

    SpatialData checks the keys of a table's ``uns`` only when the data is written:
    a name it refuses (``"a/b"``, ``"my result"``) or one differing only in case from
    a key already there would be stored, and ``sdata.write`` would then fail.

    Parameters
    ----------
    parameter
        Name of the argument that gave ``key``, for the message.
    key
        The output name.
    suffixes
        The tool writes ``key + suffix`` for each of these.
    uns
        Keys already in the table's ``uns``; those the tool writes are replaced.
        The reserved keys are compared whether listed or not.

    Raises
    ------
    TypeError
        If ``key`` is not a string.
    ValueError
        If ``key`` is empty, a key written is reserved (:data:`RESERVED_UNS`) or not a
        valid SpatialData name, or differs only in case from a key of ``uns`` or a
        reserved one.
    """
    check_output_key(parameter, key, RESERVED_UNS, "table uns key", suffixes)
    written = {key + suffix: (key + suffix).lower() for suffix in suffixes}
    for name in written:
        try:
            check_valid_name(name)
        except ValueError as error:
            raise ValueError(
                f"{parameter}={key!r} would write the table uns key {name!r}, which SpatialData "
                f"cannot save: {error}"
            ) from None
    # RESERVED_UNS too: a table created for the results holds spatialdata_attrs.
    for other in sorted({*uns, *RESERVED_UNS}):
        if other not in written and other.lower() in written.values():
            raise ValueError(
                f"{parameter}={key!r} would write a table uns key differing only in case from "
                f"{other!r}; SpatialData cannot save both, choose another name"
            )

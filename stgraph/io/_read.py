"""One entry point for every input stgraph reads: the platform is recognised by its files."""
from __future__ import annotations

import inspect
from os import PathLike

from spatialdata import SpatialData

from .._formats import INPUT_FORMATS as FORMATS
from .._validation import check_path
from . import _cosmx, _merscope, _xenium
from ._spatialdata import from_spatialdata

#: What :func:`read` looks for in a folder, in this order, and the format it implies.
SIGNATURES = (
    ("xenium", _xenium.TRANSCRIPTS_FILE),
    ("xenium", _xenium.TRANSCRIPTS_CSV_FILE),
    ("merscope", _merscope.TRANSCRIPTS_FILE),
    ("cosmx", _cosmx.TX_FILE_PATTERN),
    ("cosmx", _cosmx.TX_FILE_PATTERN + ".gz"),
    ("zarr", ".zgroup"),
    ("zarr", "zarr.json"),
)


def _read_zarr(path, **options) -> SpatialData:
    import spatialdata

    return from_spatialdata(spatialdata.read_zarr(path), **options)


_READERS = dict(zip(FORMATS, (_xenium.read_xenium, _merscope.read_merscope, _cosmx.read_cosmx, _read_zarr)))
# Options of the zarr reader are those of from_spatialdata but its first argument.
_OPTIONS = {**_READERS, "zarr": from_spatialdata}


def reader_options(name: str) -> list[str]:
    """The keyword options :func:`read` accepts for the format ``name``."""
    return list(inspect.signature(_OPTIONS[name]).parameters)[1:]


def detect_format(path: str | PathLike) -> str:
    """The format of a folder :func:`read` can read, from the files it holds.

    Parameters
    ----------
    path
        Folder to look into (a SpatialData ``.zarr`` store is a folder too).

    Returns
    -------
    ``"xenium"``, ``"merscope"``, ``"cosmx"`` or ``"zarr"``: that of the first file of
    :data:`SIGNATURES` found, in their order.

    Raises
    ------
    TypeError
        If ``path`` is not a string or ``os.PathLike``.
    ValueError
        If ``path`` is not a folder or holds none of the files of :data:`SIGNATURES`.
    """
    folder = check_path("path", path)
    if not folder.is_dir():
        raise ValueError(
            f"{str(path)!r} is not a folder: give a Xenium output folder, a MERSCOPE region folder, "
            "a folder of CosMx flat files or a SpatialData .zarr store"
        )
    for name, pattern in SIGNATURES:
        if next(folder.glob(pattern), None) is not None:
            return name
    looked_for = ", ".join(f"{pattern} ({name})" for name, pattern in SIGNATURES)
    raise ValueError(f"cannot tell the format of {str(path)!r}: it holds none of {looked_for}")


def resolve_format(path: str | PathLike, format: str = "auto") -> str:
    """The format :func:`read` reads ``path`` as: ``format``, or for ``"auto"`` the one
    :func:`detect_format` recognises.

    Raises
    ------
    ValueError
        For an unknown ``format`` and, with ``"auto"``, whatever :func:`detect_format` refuses.
    """
    if format != "auto" and format not in FORMATS:
        raise ValueError(f"format must be 'auto' or one of {FORMATS}, got {format!r}")
    return detect_format(path) if format == "auto" else format


def read(path: str | PathLike, *, format: str = "auto", **options) -> SpatialData:
    """Read a platform's output folder or a SpatialData store into stgraph's schema.

    Parameters
    ----------
    path
        A Xenium output folder, a MERSCOPE region folder, a folder of CosMx flat files,
        or a SpatialData ``.zarr`` store (e.g. Bento's, or a saved stgraph result).
    format
        ``"auto"`` (recognise it by its files, see :func:`detect_format`),
        ``"xenium"``, ``"merscope"``, ``"cosmx"`` or ``"zarr"``.
    **options
        Keyword arguments of the reader: :func:`read_xenium`, :func:`read_merscope`,
        :func:`read_cosmx`, or for a store :func:`from_spatialdata` (e.g.
        ``pixel_size``, ``gene=``), all of which take ``drop_controls``.

    Returns
    -------
    The reader's :class:`~spatialdata.SpatialData`.

    Raises
    ------
    ValueError
        For an unknown ``format``, a ``path`` whose format cannot be told (the
        message lists the files looked for), an option the reader does not take, and
        whatever the reader refuses.
    """
    name = resolve_format(path, format)
    accepted = reader_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"the {name} reader takes no option {unknown}; it takes {accepted}")
    return _READERS[name](path, **options)

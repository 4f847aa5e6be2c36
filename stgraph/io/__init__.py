"""Readers of transcript-level data into :class:`spatialdata.SpatialData`.

:func:`read` recognises the platform of a folder (or a SpatialData store) by its
files and calls the reader for it. Every reader returns the points element ``transcripts`` in one schema (see
:mod:`stgraph.io._schema`): ``x``, ``y`` (``z``) in µm, ``gene``, ``cell_id``,
``in_nucleus`` / ``nucleus_id`` where known, ``is_control``, plus the platform's other
columns; and the shapes ``cell_boundaries`` / ``nucleus_boundaries`` where the data has
them. :func:`transcripts_frame` reads the points back as a validated DataFrame;
:func:`outlines_from_transcripts` draws outlines around the molecules where the data have none.
"""
from ._cosmx import read_cosmx
from ._generic import read_transcripts
from ._merscope import read_merscope
from ._outlines import outlines_from_transcripts
from ._read import detect_format, read
from ._spatialdata import from_spatialdata, transcripts_frame
from ._table import TABLE_KEY, cell_gene_table, check_table, get_table
from ._xenium import read_xenium

__all__ = [
    "TABLE_KEY",
    "cell_gene_table",
    "check_table",
    "detect_format",
    "get_table",
    "from_spatialdata",
    "outlines_from_transcripts",
    "read",
    "read_cosmx",
    "read_merscope",
    "read_transcripts",
    "read_xenium",
    "transcripts_frame",
]

"""Column conventions of the ``transcripts`` points element.

Every reader in :mod:`stgraph.io` returns points with these columns, so that the
rest of the library reads one schema whatever the platform.
"""
from __future__ import annotations

#: Element names inside the returned :class:`spatialdata.SpatialData`.
POINTS_KEY = "transcripts"
CELL_SHAPES_KEY = "cell_boundaries"
NUCLEUS_SHAPES_KEY = "nucleus_boundaries"

#: Coordinates in micrometres; ``z`` only for 3D platforms.
X, Y, Z = "x", "y", "z"
#: Gene (feature) name, categorical.
GENE = "gene"
#: Id of the containing cell, categorical of strings; missing (NaN) when unassigned.
CELL = "cell_id"
#: Whether the molecule lies in a nucleus (bool), where the platform tells.
IN_NUCLEUS = "in_nucleus"
#: Id of the containing nucleus, categorical of strings, NaN outside, where known.
NUCLEUS = "nucleus_id"
#: Negative controls, blanks and unassigned codewords (bool).
IS_CONTROL = "is_control"

#: Gene-name prefixes of probes that are not genes (case-insensitive).
CONTROL_PREFIXES = (
    "negprb",
    "blank",
    "notarget",
    "negcontrol",
    "unassignedcodeword",
    "deprecatedcodeword",
    "antisense",
    "intergenic",
    "systemcontrol",
    "falsecode",
)

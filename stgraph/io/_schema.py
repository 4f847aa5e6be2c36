"""Column conventions of the ``transcripts`` points element.

Every reader in :mod:`stgraph.io` returns points with these columns, so that the
rest of the library reads one schema whatever the platform.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

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

#: Cell / nucleus id values that mean "not in any cell" in the tables of the supported
#: platforms: Bento's empty string, Xenium's ``UNASSIGNED`` and MERSCOPE's ``-1``.
#: CosMx's ``0`` is not listed because the CosMx reader builds its own ids.
UNASSIGNED_IDS = ("", "UNASSIGNED", "-1")

#: Schema columns in the order the readers write them (optional ones where present).
COLUMNS = (X, Y, Z, GENE, CELL, IN_NUCLEUS, NUCLEUS, IS_CONTROL)


def control_mask(names: Iterable) -> np.ndarray:
    """Whether each name is a control probe, by :data:`CONTROL_PREFIXES`.

    Parameters
    ----------
    names
        Iterable of gene / feature names.

    Returns
    -------
    Boolean array, ``True`` where the name starts (case-insensitively) with one of the
    :data:`CONTROL_PREFIXES`.
    """
    return np.fromiter(
        (str(name).lower().startswith(CONTROL_PREFIXES) for name in names), dtype=bool
    )

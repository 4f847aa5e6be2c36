"""Spot lattices: grid-type detection, lattice-unit coordinates and sub-lattices.

Visium spots sit on a hexagonal lattice whose array coordinates satisfy
``array_row + array_col`` even, with ``array_col`` advancing by 2 between
neighbours of a row; legacy ST spots sit on a square grid. In *lattice units*
the nearest-neighbour distance of the full lattice is 1:

* square: ``(x, y) = (array_col, array_row)``;
* hexagonal: ``(x, y) = (array_col / 2, array_row * sqrt(3) / 2)``.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import cKDTree

GridType = Literal["hexagonal", "square"]
GRID_TYPES = ("hexagonal", "square")

# |A·(0, 2)| / |A·(1, 1)| for the affine map A of array → pixel coordinates:
# 1 on a hexagonal lattice, sqrt(2) on a square grid; split halfway.
_HEX_SQUARE_RATIO_SPLIT = (1.0 + np.sqrt(2.0)) / 2.0
# sqrt(3) on a hexagonal lattice whose array_row and array_col are swapped; split
# halfway from the square grid's sqrt(2).
_SQUARE_SWAPPED_RATIO_SPLIT = (np.sqrt(2.0) + np.sqrt(3.0)) / 2.0


def array_coordinates(obs) -> np.ndarray:
    """``(n, 2)`` float array of ``(array_row, array_col)`` read from ``obs``, whose
    columns must be numeric (or categoricals of numbers)."""
    missing = [key for key in ("array_row", "array_col") if key not in obs]
    if missing:
        raise ValueError(f"`adata.obs` lacks the lattice column(s) {missing}.")
    for key in ("array_row", "array_col"):
        column = obs[key]
        values = column.cat.categories if isinstance(column.dtype, pd.CategoricalDtype) else column
        if pd.api.types.is_bool_dtype(values.dtype) or not pd.api.types.is_numeric_dtype(values.dtype):
            raise ValueError(
                f"`obs['{key}']` must hold numbers (integer spot indices), got dtype {column.dtype}; "
                f"{numeric_hint(key)}"
            )
    rc = np.column_stack([obs["array_row"].to_numpy(), obs["array_col"].to_numpy()]).astype(float)
    if not np.isfinite(rc).all():
        raise ValueError("`obs['array_row']` / `obs['array_col']` contain NaN or infinite values.")
    fractional = rc != np.round(rc)
    if fractional.any():
        key = "array_row" if fractional[:, 0].any() else "array_col"
        example = rc[fractional.any(axis=1)][0].tolist()
        raise ValueError(
            f"`obs['array_row']` / `obs['array_col']` must be integer spot indices of the Visium / ST array; "
            f"{int(fractional.any(axis=1).sum())} spot(s) have a non-integer `{key}`, e.g. (row, col) = {example}."
        )
    return rc


def numeric_hint(key: str) -> str:
    """The advice of :func:`array_coordinates` for a column ``obs[key]`` that holds no
    numbers (the console command gives its own)."""
    return f"convert it first, e.g. `adata.obs['{key}'] = adata.obs['{key}'].astype(int)`."


def fit_affine(rc: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Least-squares affine map ``[row, col, 1] @ A ≈ xy``; returns ``A`` of shape ``(3, 2)``.

    With fewer than three non-collinear spots the map is under-determined; the
    minimum-norm solution is returned (an exact fit of the given spots).
    """
    design = np.column_stack([rc, np.ones(len(rc))])
    coef, *_ = np.linalg.lstsq(design, np.asarray(xy, dtype=float), rcond=None)
    return coef


def apply_affine(coef: np.ndarray, rc: np.ndarray) -> np.ndarray:
    """Map ``(row, col)`` array coordinates through an affine map from :func:`fit_affine`."""
    return np.column_stack([rc, np.ones(len(rc))]) @ coef


def pixel_positions(
    rc: np.ndarray, xy: np.ndarray, query: np.ndarray, neighbours: tuple[np.ndarray, np.ndarray] | None
) -> np.ndarray:
    """Pixel coordinates of the array positions ``query`` from those of the observed spots,
    given the spots nearest them (:func:`nearest_spots`; ``None`` when ``query`` is empty).

    The least-squares affine map of array to pixel coordinates (:func:`fit_affine`),
    plus the mean of its residuals at the nearest observed spots (all those at the
    smallest lattice distance). Legacy ST slides are not affine: their spots lie up to
    a fifth of a spacing off the fitted map, and the map alone put a midpoint up to
    0.17 spacings (a third of the halved spacing) from the mean of its two spots
    (HER2 A1, B1, mouse olfactory bulb). With the residuals a midpoint is the
    mean of its two spots' pixel coordinates and a square cell centre that of its four
    corners, however the pixel grid is warped.
    """
    query = np.asarray(query, dtype=float)
    affine = fit_affine(rc, xy)
    if not len(query):
        return np.empty((0, 2))
    residual = np.asarray(xy, dtype=float) - apply_affine(affine, rc)
    index, nearest = neighbours
    correction = (residual[index] * nearest[..., None]).sum(axis=1) / nearest.sum(axis=1, keepdims=True)
    return apply_affine(affine, query) + correction


def nearest_spots(rc: np.ndarray, query: np.ndarray, grid: GridType) -> tuple[np.ndarray, np.ndarray]:
    """The observed spots nearest each query position: all those at the smallest
    lattice distance (a midpoint's two spots, a square cell centre's four corners).

    Returns ``(index, nearest)``, both ``(len(query), k)``: candidate spot indices
    into ``rc`` and whether each is at the smallest distance (the first always is);
    ``k`` is the most spots any query has at its smallest distance.
    """
    tree = cKDTree(lattice_positions(rc, grid))
    pos = lattice_positions(query, grid)
    smallest, _ = tree.query(pos, k=1)
    # Not a fixed k: the middle of a lost patch can have more than six spots at its
    # smallest distance (eight at sqrt(5) spacings around a square diamond of 13 sites).
    found = tree.query_ball_point(pos, smallest + 1e-6, return_sorted=True)
    counts = np.fromiter(map(len, found), dtype=np.int64, count=len(found))
    nearest = np.arange(counts.max()) < counts[:, None]
    index = np.zeros(nearest.shape, dtype=np.int64)
    index[nearest] = np.concatenate(found)
    return index, nearest


def detect_grid(rc: np.ndarray, spatial: np.ndarray | None = None) -> GridType:
    """Detect whether spots lie on a hexagonal (Visium) or square (ST) lattice.

    A hexagonal lattice needs ``array_row + array_col`` of one parity. When pixel
    coordinates are given (and span two dimensions) the decision is then made on
    the geometry: on a hexagonal lattice the spot two columns along a row is as far
    as the spot one row and one column away; on a square grid it is sqrt(2) times
    farther. Without usable pixel coordinates, one parity means hexagonal.

    A hexagonal lattice in offset coordinates (``array_col`` counting the spots of
    each row) has both parities, and one with ``array_row`` and ``array_col``
    swapped a step ratio of sqrt(3); both are detected as square. :func:`check_grid`,
    which :func:`stgraph.tl.enhance` calls, refuses them from the pixel coordinates.

    Parameters
    ----------
    rc
        ``(n, 2)`` array coordinates ``(array_row, array_col)``; non-integer ones
        mean square.
    spatial
        Optional ``(n, 2)`` pixel coordinates of the same spots (``obsm['spatial']``);
        used only with at least 3 spots whose array coordinates span two dimensions.

    Returns
    -------
    ``"hexagonal"`` or ``"square"``.
    """
    rc = np.asarray(rc, dtype=float)
    if len(_parities(rc)) > 1 or not np.allclose(rc, np.round(rc)):
        return "square"
    ratio = _step_ratio(rc, spatial)
    return "hexagonal" if ratio is None else _grid_of_ratio(ratio)


def _parities(rc: np.ndarray) -> np.ndarray:
    """The distinct parities of ``array_row + array_col``."""
    return np.unique(np.mod(rc.sum(axis=1), 2))


def _grid_of_ratio(ratio: float) -> GridType:
    return "hexagonal" if ratio < _HEX_SQUARE_RATIO_SPLIT else "square"


def _step_ratio(rc: np.ndarray, spatial: np.ndarray | None) -> float | None:
    """Pixel length of the step (0, 2) over that of (1, 1) (1 hexagonal, sqrt(2) square);
    None without pixel coordinates spanning two dimensions."""
    if spatial is None or len(rc) < 3 or np.linalg.matrix_rank(rc - rc.mean(0)) < 2:
        return None
    coef = fit_affine(rc, spatial)
    step_row, step_col = coef[0], coef[1]
    return float(np.linalg.norm(2 * step_col) / max(np.linalg.norm(step_row + step_col), 1e-12))


def _odd_row_shift(rc: np.ndarray, spatial: np.ndarray | None) -> float | None:
    """Pixel shift of the odd rows along a row, in column steps, fitted with the affine map:
    ±½ for a hexagonal lattice in offset coordinates (``array_col`` counting the spots of
    each row), about 0 on a square grid; None without pixel coordinates that separate it
    (fewer than three rows, or one line of spots)."""
    if spatial is None:
        return None
    design = np.column_stack([rc, np.ones(len(rc)), np.mod(rc[:, 0], 2)])
    if np.linalg.matrix_rank(design) < 4:
        return None
    coef, *_ = np.linalg.lstsq(design, np.asarray(spatial, dtype=float), rcond=None)
    step_col = coef[1]
    return float(coef[3] @ step_col / max(step_col @ step_col, 1e-24))


def _check_not_offset(rc: np.ndarray, spatial: np.ndarray | None) -> None:
    """Refuse a hexagonal lattice given in offset coordinates: both parities of
    ``array_row + array_col`` make it look square, and its spots would be placed as such."""
    shift = _odd_row_shift(rc, spatial) if len(_parities(rc)) > 1 else None
    if shift is not None and abs(shift) > 0.25:
        raise ValueError(
            f"In `obsm['spatial']` the odd rows are shifted by {shift:+.2f} of a column step along the rows: "
            f"a hexagonal lattice whose `array_col` counts the spots of each row (offset coordinates). {offset_hint(shift)}"
        )


def visium_column(shift: float) -> str:
    """Visium's ``array_col`` of a hexagonal lattice in offset coordinates whose odd rows
    are shifted by ``shift`` column steps (its sign matters), as a formula."""
    return "2 * array_col + array_row % 2" if shift > 0 else "2 * array_col + (array_row + 1) % 2"


def offset_hint(shift: float) -> str:
    """The advice of :func:`_check_not_offset` (the console command gives its own)."""
    return f"Convert to Visium's convention (columns step by 2 along a row), e.g. `array_col = {visium_column(shift)}`."


#: The advice of :func:`_check_not_swapped` (the console command gives its own).
SWAPPED_HINT = (
    "Swap them first, e.g. `adata.obs[['array_row', 'array_col']] = adata.obs[['array_col', 'array_row']].to_numpy()`."
)


def _check_not_swapped(ratio: float | None) -> None:
    """Refuse a hexagonal lattice whose ``array_row`` and ``array_col`` are swapped: its
    one parity and the step ratio of :func:`_step_ratio` (sqrt(3)) make it look like a
    square grid, whose neighbours it does not have."""
    if ratio is not None and ratio > _SQUARE_SWAPPED_RATIO_SPLIT:
        raise ValueError(
            f"In `obsm['spatial']` the spot two columns along a row is {ratio:.2f} times as far as the spot one row "
            "and one column away: 1.73 on a hexagonal lattice whose `array_row` and `array_col` are swapped (1 in "
            f"Visium's convention, 1.41 on a square grid). {SWAPPED_HINT}"
        )


def check_grid(grid: str | None, rc: np.ndarray, spatial: np.ndarray | None) -> GridType:
    """Validate a user-given grid type against the coordinates, or detect it when ``grid`` is None.

    A given grid must fit: ``'hexagonal'`` needs ``array_row + array_col`` of one
    parity, and with pixel coordinates spanning two dimensions the spots' geometry
    (see :func:`detect_grid`) must be that of the given lattice.

    Raises
    ------
    ValueError
        If ``grid`` is not a grid type or does not fit the coordinates, or the pixel
        coordinates show a hexagonal lattice in offset coordinates (odd rows shifted
        by half a column step) or with ``array_row`` and ``array_col`` swapped,
        whatever ``grid``.
    """
    if grid is not None and grid not in GRID_TYPES:
        raise ValueError(f"`grid` must be one of {GRID_TYPES} or None, got {grid!r}.")
    _check_not_offset(rc, spatial)
    ratio = _step_ratio(rc, spatial) if len(_parities(rc)) == 1 else None
    _check_not_swapped(ratio)
    if grid is None:
        return detect_grid(rc, spatial)
    if grid == "hexagonal" and len(_parities(rc)) > 1:
        raise ValueError(
            f"{grid_argument(grid)} needs array_row + array_col of one parity (Visium convention), "
            "but the spots have both even and odd sums: a square grid."
        )
    if ratio is not None and _grid_of_ratio(ratio) != grid:
        found = _grid_of_ratio(ratio)
        raise ValueError(
            f"{grid_argument(grid)} does not fit the spots: in `obsm['spatial']` the spot two columns along a row "
            f"is {ratio:.2f} times as far as the spot one row and one column away (1 on a hexagonal lattice, "
            f"1.41 on a square grid), i.e. a {found} lattice. {grid_hint(found)}"
        )
    return grid


def grid_argument(grid: GridType) -> str:
    """How :func:`check_grid` names the given ``grid`` (the console command names its flag)."""
    return f"`grid={grid!r}`"


def grid_hint(found: GridType) -> str:
    """The advice of :func:`check_grid` for a given grid that does not fit the ``found`` one."""
    return f"Pass {grid_argument(found)} or None to detect it."


def off_lattice(rc: np.ndarray, grid: GridType, parity: float) -> np.ndarray:
    """Boolean mask of array positions that are not lattice sites: non-integer, or on a
    hexagonal lattice with ``array_row + array_col`` not of the spots' ``parity``."""
    rc = np.asarray(rc, dtype=float)
    off = (rc != np.round(rc)).any(axis=1)
    if grid == "hexagonal":
        off |= np.mod(rc.sum(axis=1), 2) != parity
    return off


def lattice_positions(rc: np.ndarray, grid: GridType) -> np.ndarray:
    """Array ``(row, col)`` → Euclidean coordinates in lattice units (neighbour distance 1)."""
    rc = np.asarray(rc, dtype=float)
    if grid == "hexagonal":
        return np.column_stack([rc[:, 1] / 2.0, rc[:, 0] * np.sqrt(3.0) / 2.0])
    return np.column_stack([rc[:, 1], rc[:, 0]])


def lattice_spacing(pos: np.ndarray) -> float:
    """Median nearest-neighbour distance of positions (lattice units); 1 with fewer than two."""
    if len(pos) < 2:
        return 1.0
    dist, _ = cKDTree(pos).query(pos, k=2)
    return float(np.median(dist[:, 1]))


def neighbour_midpoints(rc: np.ndarray, grid: GridType, spacing: float) -> np.ndarray:
    """Array coordinates of the ×2 sub-lattice points between observed spots.

    The lattice at half the spacing consists of the observed lattice plus the
    midpoints of neighbouring spot pairs (on a square grid, diagonal pairs give the
    cell centres). Only midpoints of *observed* pairs are returned, so new points
    never leave the tissue; points coinciding with observed spots are dropped.
    Rows are unique and sorted.
    """
    pos = lattice_positions(rc, grid)
    reach = spacing * (np.sqrt(2.0) if grid == "square" else 1.0) * 1.01
    pairs = cKDTree(pos).query_pairs(reach, output_type="ndarray")
    if len(pairs) == 0:
        return np.empty((0, 2))
    mid = np.unique((rc[pairs[:, 0]] + rc[pairs[:, 1]]) / 2.0, axis=0)
    return mid[~_rows_in(mid, rc)]


def coarse_sublattice(rc: np.ndarray, grid: GridType, spacing: float = 1.0, coset: int = 0) -> np.ndarray:
    """Boolean mask of the spots on the lattice of twice the spacing (one spot in four).

    ``spacing`` is the lattice step in array units (1 for a full lattice). Square:
    every other row and every other column. Hexagonal: every other row and, within
    it, every other spot, the column offset alternating between kept rows so that the
    kept spots form a hexagonal lattice again. Offsets are anchored at the smallest
    row and column, so the result does not depend on the order of spots; ``coset``
    (0–3) picks one of the four translates of the coarse lattice.
    """
    if coset not in range(4):
        raise ValueError(f"`coset` must be 0, 1, 2 or 3, got {coset!r}.")
    u = np.round((rc[:, 0] - rc[:, 0].min()) / spacing).astype(np.int64)
    v = np.round((rc[:, 1] - rc[:, 1].min()) / spacing).astype(np.int64)
    if grid == "square":
        return ((u + coset // 2) % 2 == 0) & ((v + coset % 2) % 2 == 0)
    # Shift the column anchor so that u + v is even (the Visium parity rule); the
    # coarse hexagonal lattice is then u even and u + v divisible by 4, and its
    # translates are the shifts by (0, 2), (1, 1) and (1, 3) steps.
    v = v + (u + v) % 2
    du, dv = ((0, 0), (0, 2), (1, 1), (1, 3))[coset]
    return ((u + du) % 2 == 0) & ((u + du + v + dv) % 4 == 0)


def gap_positions(rc: np.ndarray, grid: GridType, max_size: int | None = None) -> np.ndarray:
    """Unobserved lattice points enclosed by observed spots: the holes inside the tissue.

    A hole is a connected set of unobserved lattice points (lattice neighbours) that
    cannot reach the outside of the slide without crossing an observed spot; a single
    dropped spot is a hole of size 1, a lost patch a larger one. Holes of more than
    ``max_size`` points are left out (None: none is). Sorted rows of ``(row, col)``.
    """
    rc = np.round(np.asarray(rc, dtype=float)).astype(np.int64)
    if not len(rc):
        return np.empty((0, 2))
    cells, unlattice = _lattice_cells(rc, grid)
    # A margin of one lattice step, so that every point outside the tissue is joined
    # to the border of the array and only enclosed ones form inner components.
    origin = cells.min(axis=0) - 1
    occupied = np.zeros(tuple(cells.max(axis=0) - origin + 2), dtype=bool)
    occupied[tuple((cells - origin).T)] = True
    labels, _ = ndimage.label(~occupied, structure=_CONNECTIVITY[grid])
    border = np.unique(np.concatenate([labels[[0, -1]].ravel(), labels[:, [0, -1]].ravel()]))
    sizes = np.bincount(labels.ravel())
    enclosed = ~np.isin(labels, border) & (labels > 0)
    if max_size is not None:
        enclosed &= sizes[labels] <= max_size
    holes = np.argwhere(enclosed) + origin
    return unlattice(holes).astype(float)


#: Neighbours in the index arrays of :func:`_lattice_cells`: the four sides of a
#: square; for the hexagonal lattice in axial indices the six ``(±1, 0)``,
#: ``(0, ±1)``, ``(-1, 1)`` and ``(1, -1)``.
_CONNECTIVITY = {
    "square": ndimage.generate_binary_structure(2, 1),
    "hexagonal": np.array([[0, 1, 1], [1, 1, 1], [1, 1, 0]], dtype=bool),
}


def _lattice_cells(rc: np.ndarray, grid: GridType):
    """Integer indices of lattice points in an array where lattice neighbours are
    array neighbours (of :data:`_CONNECTIVITY`), and the map back to ``(row, col)``.

    Visium's hexagonal lattice doubles the columns (``row + col`` of one parity, the
    neighbours at ``(0, ±2)`` and ``(±1, ±1)``); its axial index ``(row, (col - row -
    parity) / 2)`` makes them the array neighbours above.
    """
    if grid == "square":
        return rc, lambda cells: cells
    parity = int((rc[0, 0] + rc[0, 1]) % 2)
    cells = np.column_stack([rc[:, 0], (rc[:, 1] - rc[:, 0] - parity) // 2])
    return cells, lambda cells: np.column_stack([cells[:, 0], 2 * cells[:, 1] + cells[:, 0] + parity])


def _rows_in(query: np.ndarray, reference: np.ndarray) -> np.ndarray:
    ref = set(map(tuple, np.round(reference * 2).astype(np.int64)))
    return np.array([tuple(q) in ref for q in np.round(query * 2).astype(np.int64)], dtype=bool)

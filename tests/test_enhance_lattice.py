"""Tests of the spot-lattice helpers, training masks and interpolation used by the enhancer."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.interpolate import LinearNDInterpolator
from scipy.spatial import cKDTree

from stgraph.spots._baselines import gaussian_knn, linear, low_rank
from stgraph.spots._expression import log1p_cp10k
from stgraph.spots._lattice import (
    coarse_sublattice,
    detect_grid,
    gap_positions,
    lattice_positions,
    neighbour_midpoints,
)
from stgraph.spots._masks import block_mask, draw_mask, random_mask
from tests.test_enhance import lattice, slide


@pytest.mark.parametrize("grid", ["square", "hexagonal"])
def test_detect_grid_from_coordinates(grid):
    adata, _ = slide(grid, 6, 6, 4)
    rc = adata.obs[["array_row", "array_col"]].to_numpy(float)
    assert detect_grid(rc, adata.obsm["spatial"]) == grid
    assert detect_grid(rc) == grid


def test_square_checkerboard_is_not_mistaken_for_hexagonal():
    rc = lattice("square", 6, 6)
    rc = rc[rc.sum(axis=1) % 2 == 0].astype(float)  # one parity, as on Visium
    assert detect_grid(rc, rc[:, ::-1] * 100.0) == "square"
    assert detect_grid(rc) == "hexagonal"  # without pixel coordinates parity decides


@pytest.mark.parametrize("grid", ["square", "hexagonal"])
def test_lattice_units_and_coarse_sublattice(grid):
    rc = lattice(grid, 8, 8).astype(float)
    pos = lattice_positions(rc, grid)
    nn = cKDTree(pos).query(pos, k=2)[0][:, 1]
    np.testing.assert_allclose(nn, 1.0)
    cosets = [coarse_sublattice(rc, grid, coset=c) for c in range(4)]
    assert np.array_equal(np.sum(cosets, axis=0), np.ones(len(rc)))  # a partition
    for keep in cosets:
        assert keep.sum() == 16
        kept = pos[keep]
        d, _ = cKDTree(kept).query(kept, k=2)
        np.testing.assert_allclose(d[:, 1], 2.0)  # the lattice of twice the spacing
    # on the coarse lattice (spacing 2 in array units) the next coarser one is a quarter again
    coarse = rc[cosets[0]]
    assert coarse_sublattice(coarse, grid, spacing=2).sum() == 4


@pytest.mark.parametrize("grid", ["square", "hexagonal"])
def test_midpoints_are_the_half_spacing_lattice(grid):
    rc = lattice(grid, 6, 6).astype(float)
    mid = neighbour_midpoints(rc, grid, 1.0)
    expected = 5 * 6 * 2 + 25 if grid == "square" else 5 * 6 + 2 * 5 * 6 - 5
    assert len(mid) == expected == len(np.unique(mid, axis=0))
    both = lattice_positions(np.vstack([rc, mid]), grid)
    d, _ = cKDTree(both).query(both, k=2)
    np.testing.assert_allclose(d[:, 1], 0.5)
    # mapping a coarse lattice up by x2 gives back the points of the fine one in between
    coarse = coarse_sublattice(rc, grid)
    fine = {tuple(p) for p in neighbour_midpoints(rc[coarse], grid, 2.0)}
    assert fine <= {tuple(p) for p in rc[~coarse]}


def test_gap_positions_are_interior_holes_only():
    rc = lattice("square", 5, 5)
    interior = (rc[:, 0] == 2) & (rc[:, 1] == 2)
    edge = (rc[:, 0] == 0) & (rc[:, 1] == 3)
    assert gap_positions(rc[~(interior | edge)], "square").tolist() == [[2.0, 2.0]]
    assert len(gap_positions(rc, "square")) == 0


@pytest.mark.parametrize("parity", [0, 1])
def test_gap_positions_fill_enclosed_holes_of_any_size(parity):
    rc = lattice("hexagonal", 9, 9) + [0, parity]
    sites = {tuple(p) for p in rc.tolist()}
    # A lost patch of three mutual neighbours, a dropped spot, and a notch open to the outside.
    patch = {(4, 8 + parity), (4, 10 + parity), (5, 9 + parity)}
    single = {(2, 4 + parity)}
    notch = {(0, 8 + parity), (1, 9 + parity)}
    assert patch | single | notch <= sites
    observed = np.array(sorted(sites - patch - single - notch), dtype=float)
    assert gap_positions(observed, "hexagonal").tolist() == sorted(map(list, patch | single))
    assert gap_positions(observed, "hexagonal", max_size=2).tolist() == sorted(map(list, single))
    # A square slide with a 2 x 2 hole.
    square = lattice("square", 6, 6)
    hole = np.isin(square[:, 0], [2, 3]) & np.isin(square[:, 1], [1, 2])
    assert gap_positions(square[~hole], "square").tolist() == [[2, 1], [2, 2], [3, 1], [3, 2]]
    # Diagonal neighbours do not join the inside of a square lattice to the outside.
    corner = (square[:, 0] == 0) & (square[:, 1] == 0) | (square[:, 0] == 1) & (square[:, 1] == 1)
    assert gap_positions(square[~corner], "square").tolist() == [[1, 1]]


@pytest.mark.parametrize("grid", ["square", "hexagonal"])
def test_linear_matches_scipy_on_degenerate_lattices(grid):
    rng = np.random.default_rng(0)
    pos = lattice_positions(lattice(grid, 12, 12), grid)
    visible = rng.random(len(pos)) < 0.5
    values = rng.normal(size=(visible.sum(), 3))
    ours = linear(pos[visible], values, pos[~visible])
    ref = LinearNDInterpolator(pos[visible], values)(pos[~visible])
    inside = ~np.isnan(ref).any(axis=1)
    np.testing.assert_allclose(ours[inside], ref[inside], atol=1e-12)
    outside_nearest = cKDTree(pos[visible]).query(pos[~visible][~inside])[1]
    np.testing.assert_array_equal(ours[~inside], values[outside_nearest])


def test_baseline_helpers():
    pos = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    values = np.array([[1.0], [3.0], [5.0]])
    w = np.exp(-0.5 * np.array([0.25, 0.25, 6.25]))
    np.testing.assert_allclose(gaussian_knn(pos, values, np.array([[0.5, 0.0]]), k=3), [[(w @ values)[0] / w.sum()]])
    # 97 spacings away every exp(-d² / 2) underflows, yet the weights are defined: the
    # nearest spot's is 1 and the next one's exp(-(98² - 97²) / 2) ~ 1e-85.
    assert gaussian_knn(pos, values, np.array([[100.0, 0.0]]), k=2).tolist() == [[5.0]]
    assert linear(pos, values, np.empty((0, 2))).shape == (0, 1)
    m = np.outer([1.0, 2.0, 3.0], [1.0, 0.5])
    np.testing.assert_allclose(low_rank(m, 1), m, rtol=1e-6)
    counts = np.array([[1.0, 3.0], [0.0, 0.0]])
    np.testing.assert_allclose(log1p_cp10k(counts), [[np.log1p(2500.0), np.log1p(7500.0)], [0.0, 0.0]], rtol=1e-6)


def test_masks_hide_and_keep_spots():
    rng = np.random.default_rng(0)
    rc = lattice("square", 10, 10).astype(float)
    pos = lattice_positions(rc, "square")
    mask = random_mask(100, rng)
    assert 15 <= mask.sum() <= 50
    block = block_mask(pos, rng)
    assert 5 <= block.sum() <= 15
    hidden = pos[block]
    assert np.ptp(hidden, axis=0).max() <= 4  # one compact square block
    sub = draw_mask("sublattice", rc, pos, "square", 1.0, rng)
    assert sub.sum() == 75
    with pytest.raises(ValueError, match="Unknown mask"):
        draw_mask("ring", rc, pos, "square", 1.0, rng)

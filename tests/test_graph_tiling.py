"""Tiling: per-tile graphs merged equal the graph built at once."""
from __future__ import annotations

import pickle

import dask
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stgraph.graph import (
    GraphTooLargeError,
    Tile,
    iter_tiles,
    merge_tile_edges,
    radius_graph,
    radius_graph_tile,
    radius_graph_tiled,
)

from .test_radius_graph import cases

SETTINGS = settings(derandomize=True, deadline=None, max_examples=25)
TILE_TO_HALO = st.sampled_from([0.4, 1.0, 1.7, 5.0, 1000.0])  # tile_size / halo


@SETTINGS
@given(case=cases(), tile_to_r=TILE_TO_HALO, k=st.one_of(st.none(), st.integers(1, 4)))
def test_tiled_equals_at_once(case, tile_to_r, k):
    tile_size = tile_to_r * case.r
    kwargs = {"loop": case.loop, "max_num_neighbors": k, "return_distance": True}
    edge_index, dist = radius_graph(case.pos, case.r, case.batch, **kwargs)
    tiled_index, tiled_dist = radius_graph_tiled(case.pos, case.r, tile_size, case.batch, **kwargs)
    assert torch.equal(tiled_index, edge_index)
    assert torch.equal(tiled_dist, dist)
    assert torch.equal(radius_graph_tiled(case.pos, case.r, tile_size, case.batch, backend="kdtree"),
                       radius_graph(case.pos, case.r, case.batch))


@SETTINGS
@given(case=cases(), tile_to_halo=TILE_TO_HALO, halo=st.sampled_from([0, 0.3, 1.0, 2.5]))
def test_tiles_partition_points_and_halos_hold_every_near_point(case, tile_to_halo, halo):
    tile_size = tile_to_halo * halo if halo else 0.7
    pos = case.pos.to(torch.float64)[:, :2]
    n = pos.shape[0]
    tiles = list(iter_tiles(case.pos, tile_size, halo))
    cores = torch.cat([tile.core for tile in tiles]) if tiles else torch.empty(0, dtype=torch.int64)
    assert torch.equal(torch.sort(cores).values, torch.arange(n))  # every point in exactly one core
    for tile in tiles:
        core, tile_halo = tile.core, tile.halo
        assert core.numel() > 0 and tile.halo_width == halo
        assert torch.equal(core, torch.sort(core).values) and torch.equal(tile_halo, torch.sort(tile_halo).values)
        assert not bool(torch.isin(core, tile_halo).any())
        corner = torch.floor(pos[core[0]] / tile_size) * tile_size
        assert bool((torch.floor(pos[core] / tile_size) * tile_size == corner).all())
        # Per-axis distance of every point to the tile's square [corner, corner + tile_size)^2.
        gap = torch.clamp(torch.maximum(corner - pos, pos - corner - tile_size), min=0)
        near = torch.nonzero((gap * gap).sum(1) <= halo * halo).flatten()  # Euclidean
        assert bool(torch.isin(near, torch.cat([core, tile_halo])).all())
        assert bool((gap[tile_halo].max(dim=1).values <= halo * (1 + 1e-9) + 1e-9).all())


def test_tiles_can_be_built_independently_and_merged():
    gen = torch.Generator().manual_seed(5)
    pos = torch.rand(500, 3, generator=gen) * torch.tensor([30.0, 20.0, 5.0])
    batch = torch.randint(0, 2, (500,), generator=gen)
    tiles = list(iter_tiles(pos, 8.0, 1.5))
    assert len(tiles) == 12
    # What a Dask user does: map over tiles on the workers, then merge by target.
    tasks = [
        dask.delayed(radius_graph_tile)(pos, 1.5, tile, batch, max_num_neighbors=6, backend="torch",
                                         return_distance=True)
        for tile in tiles
    ]
    pieces = dask.compute(*tasks, scheduler="threads", num_workers=2)
    edge_index, dist = merge_tile_edges(reversed(pieces), pos.shape[0])
    expected, expected_dist = radius_graph(pos, 1.5, batch, max_num_neighbors=6, return_distance=True)
    assert torch.equal(edge_index, expected) and torch.equal(dist, expected_dist)
    bare, no_dist = merge_tile_edges([p[0] for p in pieces], pos.shape[0])
    assert torch.equal(bare, expected) and no_dist is None
    with pytest.raises(ValueError, match="mix"):
        merge_tile_edges([pieces[0], pieces[1][0]], pos.shape[0])


def test_a_tile_that_is_not_one_of_iter_tiles_is_refused():
    gen = torch.Generator().manual_seed(8)
    pos = torch.rand(200, 2, generator=gen) * 10
    core, halo, _ = next(iter(iter_tiles(pos, 5.0, 1.0)))
    edges = radius_graph_tile(pos, 1.0, Tile(core, halo))
    assert edges.shape[1] > 0 and bool(torch.isin(edges[1], core).all())
    # A point in core and halo, or twice in the core, got edges to itself (silently 4 more edges).
    for tile, error, match in [
        (Tile(core, torch.cat([halo, core[:1]]).sort().values), ValueError, "^tile repeats points"),
        (Tile(torch.cat([core, core[-1:]]), halo), ValueError, "^tile repeats points"),
        (Tile(core, torch.tensor([200])), ValueError, r"tile.halo holds indices outside \[0, 200\)"),
        (Tile(core.float(), halo), TypeError, "tile.core must be a 1-D tensor of point indices, got torch.float32"),
        (core, TypeError, "tile must be a Tile"),
    ]:
        with pytest.raises(error, match=match):
            radius_graph_tile(pos, 1.0, tile)
    # Any order of the indices, numpy arrays and a plain (core, halo) pair give the same edges.
    assert torch.equal(radius_graph_tile(pos, 1.0, Tile(core.flip(0), halo.flip(0))), edges)
    assert torch.equal(radius_graph_tile(pos, 1.0, (core.int().numpy(), halo.numpy())), edges)


def test_a_batch_that_is_not_one_id_per_point_is_refused_by_radius_graph_tile():
    # Only the tile's rows of batch were read: a longer batch was used silently, a
    # shorter one failed with a bare IndexError.
    gen = torch.Generator().manual_seed(9)
    pos = torch.rand(50, 2, generator=gen) * 4
    tile = next(iter(iter_tiles(pos, 2.0, 0.5)))
    for length in (60, 10):
        with pytest.raises(ValueError, match=rf"^batch must have shape \[50\] \(one id per point\), got \[{length}\]$"):
            radius_graph_tile(pos, 0.5, tile, torch.zeros(length, dtype=torch.int64))
    with pytest.raises(TypeError, match="^batch must have an integer dtype, got torch.float32$"):
        radius_graph_tile(pos, 0.5, tile, torch.zeros(50))


def test_a_radius_beyond_the_tiles_halo_is_refused_and_the_halo_radius_is_exact():
    # Points 0 and 1 exactly 1.0 apart across the x = 5 tile border; point 3 is 1.5 from
    # point 0, beyond the halo 1.0: r = 1.5 silently lost the edge 3-0 before.
    pos = torch.tensor([[4.5, 1.0], [5.5, 1.0], [6.0, 1.0], [3.0, 1.0], [4.6, 1.0]], dtype=torch.float64)
    tiles = list(iter_tiles(pos, 5.0, 1.0))
    assert [tile.halo_width for tile in tiles] == [1.0, 1.0]
    exact = radius_graph(pos, 1.0, return_distance=True)
    merged = merge_tile_edges([radius_graph_tile(pos, 1.0, tile, return_distance=True) for tile in tiles], 5)
    assert torch.equal(merged[0], exact[0]) and torch.equal(merged[1], exact[1])
    assert exact[0].shape[1] == 8  # 0-1 (at exactly r), 0-4, 1-2, 1-4, both ways
    message = (r"^r=1.5 is larger than the halo width 1.0 the tile was built with: edges from points beyond "
               r"the halo would be missed; rebuild the tiles with iter_tiles\(pos, tile_size, halo\) and halo >= 1.5$")
    for tile in tiles:
        with pytest.raises(ValueError, match=message):
            radius_graph_tile(pos, 1.5, tile)
    # The width travels with the tile (pickled to a worker) and in a plain triple.
    travelled = pickle.loads(pickle.dumps(tiles[0]))
    assert travelled.halo_width == 1.0
    with pytest.raises(ValueError, match="^r=1.5 is larger than the halo width 1.0"):
        radius_graph_tile(pos, 1.5, tuple(travelled))
    # A hand-made (core, halo) pair has no known width: the caller vouches for it.
    by_hand = radius_graph_tile(pos, 1.5, (tiles[0].core, tiles[0].halo))
    assert by_hand.shape[1] > 0
    for width, error, match in [
        (-1.0, ValueError, "^tile.halo_width must be a non-negative finite number, got -1.0"),
        (float("nan"), ValueError, "^tile.halo_width must be a non-negative finite number, got nan"),
        ("1", TypeError, "tile.halo_width"),
    ]:
        with pytest.raises(error, match=match):
            radius_graph_tile(pos, 1.0, Tile(tiles[0].core, tiles[0].halo, width))


def test_merge_refuses_pieces_that_do_not_make_one_graph():
    gen = torch.Generator().manual_seed(9)
    pos = torch.rand(200, 2, generator=gen) * 10
    pieces = [radius_graph_tile(pos, 1.0, tile, return_distance=True) for tile in iter_tiles(pos, 5.0, 1.0)]
    expected = radius_graph(pos, 1.0, return_distance=True)
    merged = merge_tile_edges(pieces, 200)
    assert torch.equal(merged[0], expected[0]) and torch.equal(merged[1], expected[1])
    # Pieces not sorted by target (not from radius_graph_tile) were placed as if they
    # were: edges were overwritten and others left as zeros.
    shuffled = [(e[:, p], d[p]) for e, d in pieces for p in [torch.randperm(e.shape[1], generator=gen)]]
    edges, dist = merge_tile_edges(shuffled, 200)
    assert torch.equal(edges, expected[0]) and torch.equal(dist, expected[1])
    # A tile passed twice (a retried task, say) doubled its edges, silently.
    with pytest.raises(ValueError, match="^two pieces hold edges of the same target"):
        merge_tile_edges(pieces + pieces[:1], 200)
    for arguments, error, match in [
        ((pieces, 100), ValueError, r"a piece has edges of nodes outside \[0, 100\)"),
        ((pieces, "200"), TypeError, "^num_nodes must be an integer, got '200'$"),
        ((pieces, -1), ValueError, "^num_nodes must be an integer >= 0, got -1$"),
        (([pieces[0][0].float()], 200), TypeError, "must hold integer node indices, got torch.float32"),
        (([pieces[0][0][0]], 200), ValueError, r"must be a \[2, E\] tensor, got \[\d+\]"),
        # Tiles built from positions of two dtypes failed inside torch's copy.
        (([pieces[0], (pieces[1][0], pieces[1][1].double())], 200), ValueError,
         r"^pieces hold distances of several dtypes \['torch.float32', 'torch.float64'\]: build every tile"),
        (([(pieces[0][0], pieces[0][1][:-1])], 200), ValueError,
         rf"^a piece's distances must be a \[E\] tensor, one per edge \({pieces[0][0].shape[1]}\), got "
         rf"\[{pieces[0][0].shape[1] - 1}\]$"),
    ]:
        with pytest.raises(error, match=match):
            merge_tile_edges(*arguments)


def test_tiled_refuses_a_too_large_graph_and_handles_empty_input():
    gen = torch.Generator().manual_seed(6)
    pos = torch.rand(300, 2, generator=gen) * 10
    num_edges = radius_graph(pos, 1.0).shape[1]
    with pytest.raises(GraphTooLargeError, match=f"{num_edges:,} edges needing {num_edges * 16:,} bytes"):
        radius_graph_tiled(pos, 1.0, 3.0, max_memory=num_edges * 16 - 1)
    assert radius_graph_tiled(torch.empty(0, 2), 1.0, 3.0).shape == (2, 0)
    # The pieces too, as their docstrings say: one tile's edges, and the merged ones.
    tiles = list(iter_tiles(pos, 3.0, 1.0))
    with pytest.raises(GraphTooLargeError, match="more than the 1 bytes allowed"):
        radius_graph_tile(pos, 1.0, tiles[0], max_memory=1)
    pieces = [radius_graph_tile(pos, 1.0, tile) for tile in tiles]
    with pytest.raises(GraphTooLargeError, match=f"{num_edges:,} edges needing {num_edges * 16:,} bytes"):
        merge_tile_edges(pieces, 300, max_memory=num_edges * 16 - 1)


def test_tiled_does_not_modify_inputs():
    gen = np.random.default_rng(7)
    pos = gen.uniform(0, 10, (200, 2)).astype(np.float32)
    batch = gen.integers(0, 3, 200)
    pos_before, batch_before = pos.copy(), batch.copy()
    radius_graph_tiled(pos, 1.0, 2.5, batch, loop=True, return_distance=True)
    assert np.array_equal(pos, pos_before) and np.array_equal(batch, batch_before)


@pytest.mark.parametrize(
    ("extent", "tile_size", "halo", "message"),
    [
        (1.0, 0.0, 1.0, "tile_size must be a positive finite number, got 0.0"),
        (1.0, -2, 1.0, "tile_size must be a positive finite number"),
        (1.0, float("inf"), 1.0, "tile_size must be a positive finite number, got inf"),
        (1.0, 1.0, -1.0, "halo must be a non-negative finite number, got -1.0"),
        (3e12, 1e-7, 0.0, "too small for the extent of pos: too many tiles"),
        (1.0, 0.01, 1.0, "too small for halo=1.0: each point would lie in 40[0-9]{3} tiles"),
    ],
)
def test_bad_tiles_are_refused(extent, tile_size, halo, message):
    pos = torch.tensor([[0.0, 0.0], [extent, extent]], dtype=torch.float64)
    with pytest.raises(ValueError, match=message):
        list(iter_tiles(pos, tile_size, halo))


def test_tile_memberships_beyond_int64_are_refused():
    # Each point lies in about 2**62 tiles: the int64 sum wrapped to a negative count,
    # passed the check and failed in repeat_interleave with a RuntimeError.
    pos = torch.full((3, 2), 0.5, dtype=torch.float64)
    message = r"^tile_size=1.0 is too small for halo=1073741823.0: each point would lie in 4611686014132420608 tiles"
    with pytest.raises(ValueError, match=message):
        list(iter_tiles(pos, 1.0, 2.0**30 - 1))

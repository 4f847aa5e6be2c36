"""``stgraph.tl.enhance``: imputation and ×2 super-resolution of Visium / ST spots."""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from scipy.spatial import ConvexHull, QhullError, cKDTree

from stgraph._validation import check_bool, check_int, check_seed
from stgraph._warnings import warn_user
from stgraph.models.trainer import resolve_device
from stgraph.spots._expression import log1p_cp10k, read_counts
from stgraph.spots._lattice import (
    array_coordinates,
    check_grid,
    gap_positions,
    lattice_positions,
    lattice_spacing,
    nearest_spots,
    neighbour_midpoints,
    off_lattice,
    pixel_positions,
)
from stgraph.spots._train import EnhancerParams, EnhancerTrainer

MODES = ("impute", "super_resolution")
MIN_SPOTS = 4
_DEFAULT_MASKS = {"impute": ("random", "block"), "super_resolution": ("sublattice", "random")}
# What a call without `positions` predicts, as recorded in uns['enhance']['positions'].
_POSITIONS_KIND = {"impute": "enclosed_holes", "super_resolution": "sub_lattice"}


def enhance(
    adata: AnnData,
    mode: Literal["impute", "super_resolution"] = "super_resolution",
    *,
    positions: np.ndarray | None = None,
    max_gap_size: int | None = None,
    factor: int = 2,
    grid: Literal["hexagonal", "square"] | None = None,
    layer: str | None = None,
    counts_layer: str = "counts",
    masks: str | Sequence[str] | None = None,
    rank: int = 10,
    n_components: int = 32,
    radius: float = 2.0,
    hidden_channels: int = 32,
    num_layers: int = 2,
    heads: int = 4,
    lambda_init: float = 1.0,
    epochs: int = 10,
    n_ensemble: int = 2,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> AnnData:
    """Impute missing spots or super-resolve a Visium / ST slide ×2, self-supervised.

    Spots are nodes of a radius graph in lattice units; a
    :class:`~stgraph.nn.conv.SpatialTransformerConv` model (attention with a
    learned −λ·distance bias) reads the neighbours' whole expression profiles (a
    truncated-SVD embedding of all genes' log1p(CP10k)) and predicts the low-rank
    scores of the positions in between, as a correction of a calibrated
    interpolation of those scores. It is trained only on the observed spots: random,
    block or sub-lattice subsets of them are hidden and reconstructed. The positions
    to predict are never a training target (they are not even in the training
    graphs). An ensemble of ``n_ensemble`` models is averaged; each keeps the epoch
    with the lowest loss on observed spots it set aside if that loss is
    significantly (two standard errors) below the interpolation's, so a model that
    cannot improve on the interpolation returns it. On the real slides of
    ``benchmarks/enhance.py`` (262–987 spots) training almost never passes this
    test: the result is then the calibrated interpolation of the low-rank scores.

    Parameters
    ----------
    adata
        The spots of one slide, with unique barcodes (``obs_names``) and gene
        names (``var_names``), ``obs['array_row']``, ``obs['array_col']``
        (integer Visium or ST array coordinates, numeric columns or categoricals
        of numbers),
        ``obsm['spatial']`` (pixel coordinates) and raw (integer) counts of at least
        2 genes in ``X`` or ``layers[layer]`` (log1p(CP10k) normalises each spot over
        the genes given, so a subset of genes changes it). Not modified; a backed one (``anndata.read_h5ad(path,
        backed='r')``) is read into memory. For slides joined with
        ``anndata.concat(..., label='library_id')`` enhance each library
        (``adata[adata.obs['library_id'] == library]``) and join the results.
    mode
        ``'impute'``: predict unmeasured in-tissue lattice positions (``positions``,
        or by default every hole in the tissue: the unobserved lattice sites that
        observed spots enclose, single dropped spots and lost patches alike).
        ``'super_resolution'``: predict the lattice of half the spacing between the
        spots (the midpoints of neighbouring spots; on a square grid also the cell
        centres), i.e. ×2 per axis.
    positions
        ``(m, 2)`` ``(array_row, array_col)`` to impute (``mode='impute'`` only):
        distinct lattice sites (integers; on a hexagonal grid with ``array_row +
        array_col`` of the observed spots' parity) that are not observed spots, and
        on a slide that is a single line of spots (one row, say) lie on that line.
        Positions outside the observed spots' convex hull with no observed spot within ``radius``
        spacings are extrapolated, with a warning.
    max_gap_size
        ``mode='impute'`` without ``positions`` only: leave out holes of more than
        this many lattice sites (a lumen or a tear may have no tissue to impute);
        None fills every hole.
    factor
        Super-resolution factor per axis; only 2 is supported.
    grid
        ``'hexagonal'`` (Visium) or ``'square'`` (legacy ST); detected from the
        coordinates when None. A given grid must fit the coordinates (see Raises).
    layer
        Layer with the raw (integer) counts; ``X`` when None.
    counts_layer
        Name of the output layer that keeps the observed raw counts.
    masks
        Kinds of training masks cycled through: ``'random'`` (15–50 % of spots),
        ``'block'`` (a contiguous 5–15 % block), ``'sublattice'`` (keep one spot in
        four, the ×2 task one scale coarser); one kind may be given as a string.
        Default: ``('random', 'block')`` for imputation, ``('sublattice', 'random')``
        for super-resolution.
    rank
        Number of low-rank scores predicted (the rank of the predicted expression),
        at least 1; capped at the embedding's width.
    n_components
        Width of the expression embedding the model reads, at least 1.
    radius
        Radius of the spot graph in units of the observed spot spacing, > 0; below 1
        the ``'random'`` and ``'block'`` training tasks get no edges (below 0.5 the
        ``'sublattice'`` ones too), with a warning.
    hidden_channels, num_layers, heads, lambda_init
        Size of the attention model (each count at least 1, ``hidden_channels``
        divisible by ``heads``); ``lambda_init`` > 0 is λ per spot spacing.
    epochs
        Maximum passes over the training tasks per ensemble member, at least 0 (0:
        the calibrated interpolation alone).
    n_ensemble
        Number of independently seeded models averaged, at least 1.
    seed
        Seed of every random choice, in ``[0, 2**32 - 1]``; results on the CPU are
        deterministic.
    device
        Torch device for training and prediction: ``'cpu'``, ``'cuda'`` or
        ``'auto'`` (CUDA when available).
    progress
        Show a progress bar over training.

    Returns
    -------
    A new :class:`~anndata.AnnData`: the original spots (barcodes, ``obs`` and
    ``obsm['spatial']`` kept) followed by the new ones (index ``'imputed-<row>-<col>'``);
    ``obs['imputed']`` (bool) marks new spots (squidpy 1.8's ``spatial_scatter`` over
    an image refuses a bool ``color`` ("Invalid RGBA argument"): plot a categorical
    copy, ``out.obs['imputed_spot'] = out.obs['imputed'].astype('category')``), whose
    ``array_row`` / ``array_col`` are
    multiples of ½ under super-resolution (half-integers, or on a hexagonal lattice
    also the integer positions between two spots of a row; the columns become float)
    and lattice sites under imputation (integer columns stay integer; categorical
    ones become numeric), and whose ``obsm['spatial']`` is a least-squares affine
    fit of array to pixel coordinates corrected by the nearest observed spots' offsets
    from it: a midpoint lies exactly halfway between its two spots (a square cell
    centre at the mean of its four corners) even where the pixel grid of a legacy ST
    slide is warped. A bool or integer ``obs['in_tissue']`` (scanpy's Visium flag)
    keeps its dtype: a new spot is in the tissue (1) where every observed spot nearest
    it is (both ends of a midpoint, all four corners of a square cell centre, all
    the spots around a filled hole at the smallest distance), so a filter on it keeps
    them. The new spots' other ``obs`` values are missing (``NaN``;
    bool columns become pandas' nullable ``boolean``,
    categorical ones keep their categories, integer ones become float), so the
    result writes to h5ad; only a column that holds one library id of
    ``uns['spatial']`` on every spot (squidpy's ``library_key``) holds it for the
    new spots too, and a numeric column that equals a column of ``obsm['spatial']``
    on every spot (a copy of the pixel coordinates, as the legacy ST sets'
    ``pixel_x`` / ``pixel_y``) holds the new spots' pixel coordinates (as float). ``X`` (dense ``float32``): log1p(CP10k) — measured for the
    original spots, predicted for the new ones (a low-rank reconstruction, clipped
    at 0: unclipped, 5 % of the new spots' values on the Visium prostate slide and
    11 % on HER2 B1 were negative, down to −0.4). The new spots' values are smooth,
    so spatial statistics over all spots measure the model as much as the tissue:
    squidpy's Moran's I (``spatial_autocorr`` on ``spatial_neighbors(coord_type='grid')``)
    of the genes detected in over 10 % of the spots has a median of 0.161 with the
    new spots against 0.052 on the measured ones (Visium prostate; HER2 B1: 0.235
    against 0.070; default settings), higher for 98 % of the genes, while their ranking mostly
    holds (Spearman 0.89 and 0.80). Test such statistics on the measured spots,
    ``out[~out.obs['imputed']]``.
    ``layers[counts_layer]``: the observed raw counts (sparse ``float32``, 0 for new
    spots); ``adata.raw``, the other layers, ``obsm`` entries and ``varm`` / ``obsp``
    of ``adata`` are not carried over. ``uns`` is a copy of ``adata.uns``, with the spot diameter
    of ``uns['spatial']`` (where the input has one) halved under super-resolution (the
    measured spots of an earlier super-resolved output, which carry its ``uns['enhance']``
    and its halved diameter, first get their own diameter back),
    and ``uns['log1p']`` ``{'base': None}``, as :func:`scanpy.pp.log1p` records its
    natural-log transform (scanpy then treats ``X`` as log-transformed);
    ``uns['enhance']`` records ``mode``, ``grid``, ``seed``, ``masks``, the model's
    settings (``params``: the fields of :class:`~stgraph.spots.EnhancerParams` but
    ``masks``), which positions were predicted (``positions``: ``'given'``,
    ``'enclosed_holes'`` or ``'sub_lattice'``; the positions themselves are the spots
    with ``obs['imputed']``) and ``max_gap_size`` (``None`` unless given),
    per member the kept epoch
    (``best_epochs``; 0 means training never beat the interpolation on the
    set-aside spots and the member returns the interpolation), the loss on the
    set-aside spots after each epoch (``validation_loss``, keyed by member, entry 0:
    the interpolation) and ``shrinkage``, ``(n_ensemble, rank)``: per member the
    per-component slope applied to the interpolated scores, calibrated on masked
    observed spots other than its set-aside ones.
    With no position to predict (an impute call on a slide without holes, or whose
    holes are all larger than ``max_gap_size``) the result holds only the original
    spots.

    Raises
    ------
    TypeError
        If ``adata`` is not an AnnData, a count parameter (``rank``, ``epochs``,
        ``max_gap_size``, ...) or ``seed`` is not an int, ``progress`` is not a bool, or
        ``counts_layer`` is not a non-empty string.
    ValueError
        On an unknown ``mode``, ``factor`` other than 2, unknown mask kinds, a
        numeric parameter out of the range given above, an unknown or unavailable
        ``device``, duplicated barcodes or gene names (``var_names``), an
        ``obs['imputed']`` that is not bool or marks predicted spots (an output of enhance given back), an ``obs`` column
        of library ids of ``uns['spatial']`` holding several (spots of several
        slides), missing, non-numeric, non-finite or non-integer array coordinates,
        duplicated array positions (which the message names; slides joined without
        ``uns['spatial']`` share theirs), fewer than 4 spots or 2 genes, NaN / negative /
        all-zero / non-integer (normalised) counts, a ``grid`` that does not fit the
        coordinates (``'hexagonal'`` with ``array_row + array_col`` of both parities,
        or pixel coordinates whose geometry is that of the other lattice), a
        hexagonal lattice in offset coordinates (``array_col`` counting the spots of
        each row; in ``obsm['spatial']`` the odd rows are shifted by half a column
        step) or with ``array_row`` and ``array_col`` swapped, or impute
        ``positions`` that are malformed, duplicated, not lattice sites, coincide
        with observed spots or leave a single line of spots (see ``positions``), or
        ``max_gap_size`` below 1 or given with ``positions`` or for super-resolution.

    Warns
    -----
    UserWarning
        If impute ``positions`` lie outside the observed spots' convex hull with no
        observed spot within ``radius`` spacings (an extrapolation), and if a bool or
        integer ``obs['in_tissue']`` marks some spots off the tissue (0), or some
        spots have no counts (their log1p(CP10k) is 0 for every gene): they are
        trained on and enhanced like the others (the warning names how many and the
        filter that leaves them out); and if ``radius`` leaves the training tasks of
        some ``masks`` without edges (see ``radius``).
    """
    if not isinstance(adata, AnnData):
        raise TypeError(f"`adata` must be an AnnData, got {type(adata).__name__}.")
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}.")
    if factor != 2:
        raise ValueError(f"Only `factor=2` super-resolution is supported, got {factor!r}.")
    if positions is not None and mode != "impute":
        raise ValueError("`positions` is only used with `mode='impute'`.")
    if max_gap_size is not None:
        if mode != "impute" or positions is not None:
            raise ValueError("`max_gap_size` is only used with `mode='impute'` and no `positions`.")
        max_gap_size = check_int("max_gap_size", max_gap_size)
    params = EnhancerParams(
        rank=rank, n_components=n_components, radius=radius, hidden_channels=hidden_channels,
        num_layers=num_layers, heads=heads, lambda_init=lambda_init, epochs=epochs,
        n_ensemble=n_ensemble, masks=_DEFAULT_MASKS[mode] if masks is None else masks,
    )
    _warn_short_radius(params.radius, params.masks)
    check_seed(seed)
    if not isinstance(counts_layer, str) or not counts_layer:
        raise TypeError(f"`counts_layer` must be a non-empty string (the output layer's name), got {counts_layer!r}.")
    progress = check_bool("progress", progress)
    device = resolve_device(device)
    _check_unique(adata.obs_names, "obs_names", "barcode")
    # The output is read gene by gene by name (`adata[:, gene]`, plots): a name held by
    # several columns would select them all.
    _check_unique(adata.var_names, "var_names", "gene name")
    _check_several_genes(adata.n_vars)

    _check_one_library(adata)
    _check_measured(adata.obs)
    _warn_off_tissue(adata.obs)
    rc = array_coordinates(adata.obs)
    spatial = _spatial(adata)
    if len(rc) < MIN_SPOTS:
        raise ValueError(f"enhance needs at least {MIN_SPOTS} spots to train on, got {len(rc)}.")
    shared = pd.MultiIndex.from_arrays(rc.T).duplicated(keep=False)
    if shared.any():
        example = rc[shared][0]
        raise ValueError(
            f"{int(shared.sum())} spots share their (array_row, array_col) with another spot, e.g. "
            f"{list(adata.obs_names[(rc == example).all(axis=1)][:3])} at {example.astype(int).tolist()}. "
            "Spots of several slides (e.g. joined with `anndata.concat`)? Enhance one slide at a time."
        )
    counts = read_counts(adata, layer)
    _warn_empty_spots(counts, layer)
    grid = check_grid(grid, rc, spatial)
    query = _query_positions(mode, positions, max_gap_size, rc, grid, radius)

    values = log1p_cp10k(counts)
    trainer = EnhancerTrainer(rc, values, grid, params, seed=seed, device=device)
    if len(query):
        trainer.fit(progress=progress)
        # log1p(CP10k) is never negative; a low-rank reconstruction can dip below 0.
        predicted = np.maximum(trainer.predict(query), 0.0)
    else:
        predicted = np.empty((0, values.shape[1]), dtype=np.float32)
    neighbours = nearest_spots(rc, query, grid) if len(query) else None
    out = _assemble(adata, values, counts, predicted, query, pixel_positions(rc, spatial, query, neighbours), counts_layer)
    if neighbours is not None and "in_tissue" in adata.obs:
        _fill_in_tissue(out.obs, adata.obs["in_tissue"], neighbours)
    scale = (1.0 / factor if mode == "super_resolution" else 1.0) / _earlier_diameter_scale(adata.uns)
    if scale != 1.0:
        _scale_spot_diameter(out.uns, scale)
    # scanpy's record of a log1p X (natural log): its log1p then warns instead of taking
    # the log twice, and fold changes and highly variable genes read the base.
    out.uns["log1p"] = {"base": None}
    out.uns["enhance"] = {
        "mode": mode, "grid": grid, "seed": seed, "masks": list(params.masks),
        "positions": _POSITIONS_KIND[mode] if positions is None else "given",
        "max_gap_size": max_gap_size,
        "params": {k: v for k, v in vars(params).items() if k != "masks"},
        "best_epochs": list(trainer.best_epochs),
        "validation_loss": {str(m): np.asarray(h, dtype=np.float32) for m, h in enumerate(trainer.loss_history)},
        "shrinkage": np.asarray(trainer.shrinkage),
    }
    return out


def _check_unique(names: pd.Index, attribute: str, what: str) -> None:
    """Refuse repeated ``adata.<attribute>`` (``obs_names`` or ``var_names``), naming
    examples and anndata's fix."""
    if names.has_duplicates:
        duplicated = names[names.duplicated()].unique()
        raise ValueError(
            f"`adata.{attribute}` has {len(duplicated)} duplicated {what}(s), e.g. {list(duplicated[:3])}; "
            f"{unique_names_hint(attribute)}"
        )


def unique_names_hint(attribute: str) -> str:
    """The advice of :func:`_check_unique` for ``adata.<attribute>`` (the console
    command gives its own, as for :data:`OFF_TISSUE_HINT`)."""
    return f"make them unique first, e.g. with `adata.{attribute}_make_unique()`."


#: The advice of :func:`_check_several_genes` (the console command gives its own).
ONE_GENE_HINT = "Enhance the whole panel and select the gene from the result, e.g. `sg.tl.enhance(adata)[:, gene]`."


def _check_several_genes(n_genes: int) -> None:
    """Refuse fewer than two genes: CP10k normalises each spot over the genes given, so a
    single gene is 10^4 per 10^4 in every spot with counts, whatever its expression."""
    if n_genes < 2:
        raise ValueError(
            f"`adata` has {n_genes} gene(s): enhance needs at least 2, as log1p(CP10k) normalises each spot over "
            f"the genes given (one gene would be log1p(10^4) in every spot with counts). {ONE_GENE_HINT}"
        )


#: Smallest radius (in spot spacings) at which a training task of each mask kind has
#: edges: random and block masks leave visible spots 1 spacing from hidden ones, a
#: sub-lattice mask visible spots 2 spacings apart, which set its distance unit, with
#: hidden ones at half that.
_EDGE_RADIUS = {"random": 1.0, "block": 1.0, "sublattice": 0.5}


def _warn_short_radius(radius: float, masks: Sequence[str]) -> None:
    """Warn when ``radius`` leaves the training tasks of some ``masks`` without edges:
    they train nothing, silently, while the others still do (so the fit does not fail)."""
    without = [kind for kind in dict.fromkeys(masks) if radius < _EDGE_RADIUS[kind]]
    if without:
        warn_user(
            f"radius={radius:g} is below 1 spot spacing (the distance between neighbouring observed spots, the "
            f"unit of radius): the training tasks of masks {without} get no edges (no visible spot within radius "
            "of their hidden ones), so their targets learn nothing beyond the interpolation; 'random' and "
            "'block' tasks need radius >= 1, 'sublattice' ones radius >= 0.5"
        )


#: The advice of :func:`_warn_off_tissue` (the console command gives its own).
OFF_TISSUE_HINT = "To enhance the tissue only, pass `adata[adata.obs['in_tissue'] == 1]`."


def _warn_off_tissue(obs: pd.DataFrame) -> None:
    """Warn of spots that scanpy's ``in_tissue`` flag puts off the tissue (a raw Visium
    matrix holds every spot of the slide): their background counts would be modelled
    and super-resolved as tissue."""
    if "in_tissue" not in obs:
        return
    column = obs["in_tissue"]
    if not (pd.api.types.is_bool_dtype(column.dtype) or pd.api.types.is_integer_dtype(column.dtype)):
        return
    off = int((column.to_numpy() == 0).sum())
    if off:
        warn_user(
            f"{off} of the {len(obs)} spots have `obs['in_tissue'] == 0` (off the tissue): they are trained on "
            f"and enhanced like the others. {OFF_TISSUE_HINT}"
        )


def _warn_empty_spots(counts: np.ndarray, layer: str | None) -> None:
    """Warn of spots without a single count (a failed spot, or one off the tissue): their
    log1p(CP10k) is 0 for every gene, which the model learns from and the interpolation
    spreads to the new spots around them as if it were measured expression."""
    empty = ~counts.any(axis=1)
    if empty.any():
        warn_user(
            f"{int(empty.sum())} of the {len(counts)} spots have no counts: they are trained on and enhanced as "
            f"spots expressing no gene. {empty_spots_hint(layer)}"
        )


def empty_spots_hint(layer: str | None) -> str:
    """The advice of :func:`_warn_empty_spots` for the counts ``X`` or ``layers[layer]``
    (the console command gives its own, as for :data:`OFF_TISSUE_HINT`)."""
    matrix = "adata.X" if layer is None else f"adata.layers[{layer!r}]"
    return f"To leave them out, pass `adata[np.asarray({matrix}.sum(axis=1)).ravel() > 0]`."


def predicted_spots(obs: pd.DataFrame) -> int:
    """How many spots a boolean ``obs['imputed']`` marks as predicted by an earlier
    :func:`stgraph.tl.enhance` (a missing flag counts as predicted); 0 without one."""
    column = obs.get("imputed")
    if column is None or not pd.api.types.is_bool_dtype(column.dtype):
        return 0
    return int(column.to_numpy(dtype=bool, na_value=True).sum())


def _check_measured(obs: pd.DataFrame) -> None:
    """Refuse an ``obs['imputed']`` that would be lost or that marks predicted spots: an
    earlier output's new spots have zero counts in its counts layer and would be
    trained on as measured spots without expression."""
    column = obs.get("imputed")
    if column is not None and not pd.api.types.is_bool_dtype(column.dtype):
        raise ValueError(
            f"`adata.obs['imputed']` (dtype {column.dtype}) would be overwritten by the column that marks the "
            "new spots; rename it first."
        )
    n_predicted = predicted_spots(obs)
    if n_predicted:
        raise ValueError(
            f"{n_predicted} of the {len(obs)} spots are predicted ones of an earlier `tl.enhance` "
            "(`obs['imputed']`), not measurements: they have no counts. Enhance the measured spots, "
            "e.g. `adata[~adata.obs['imputed']]` with `layer='counts'`."
        )


def _spatial(adata: AnnData) -> np.ndarray:
    if "spatial" not in adata.obsm:
        raise ValueError("`adata.obsm['spatial']` (pixel coordinates of the spots) is required.")
    spatial = np.asarray(adata.obsm["spatial"], dtype=float)
    if spatial.ndim != 2 or spatial.shape[1] != 2 or not np.isfinite(spatial).all():
        raise ValueError("`adata.obsm['spatial']` must be a finite (n_spots, 2) array.")
    return spatial


def _query_positions(
    mode: str, positions, max_gap_size: int | None, rc: np.ndarray, grid: str, radius: float
) -> np.ndarray:
    if mode == "super_resolution":
        return neighbour_midpoints(rc, grid, lattice_spacing(lattice_positions(rc, grid)))
    if positions is None:
        return gap_positions(rc, grid, max_gap_size)
    query = np.asarray(positions)
    wanted = "`positions` must be a finite (m, 2) array of numbers, the (array_row, array_col) to impute"
    if query.dtype.kind not in "iuf":  # strings ('16') and bools (1) were taken for numbers
        raise ValueError(f"{wanted}; got dtype {query.dtype}.")
    if query.ndim != 2 or query.shape[1] != 2:
        raise ValueError(f"{wanted}; got shape {query.shape}.")
    if not np.isfinite(query).all():
        raise ValueError(f"{wanted}; got NaN or infinite values.")
    query = query.astype(float)
    requested = pd.MultiIndex.from_arrays(query.T)
    _reject(requested.duplicated(), query, "are duplicated; each position can be imputed once")
    _reject(requested.isin(pd.MultiIndex.from_arrays(rc.T)), query,
            "coincide with observed spots; only unobserved positions can be imputed")
    _reject(off_lattice(query, grid, np.mod(rc[0].sum(), 2)), query,
            f"are not sites of the {grid} lattice (integer array coordinates"
            + (", array_row + array_col of the spots' parity)" if grid == "hexagonal" else ")"))
    _reject(_off_the_line(rc, query), query,
            "lie off the single line of the observed spots, across which the affine map to pixel coordinates "
            "(`obsm['spatial']`) is undetermined")
    extrapolated = _extrapolated(lattice_positions(rc, grid), lattice_positions(query, grid), radius)
    if extrapolated.any():
        warn_user(
            f"{_count_and_examples(extrapolated, query)} lie outside the observed spots' convex hull with no "
            f"observed spot within `radius`={radius:g} spot spacings: their prediction is an extrapolation."
        )
    return query


def _count_and_examples(flagged: np.ndarray, query: np.ndarray) -> str:
    return f"{int(flagged.sum())} of the {len(query)} `positions` (e.g. {query[flagged][:3].tolist()})"


def _reject(flagged: np.ndarray, query: np.ndarray, problem: str) -> None:
    if flagged.any():
        raise ValueError(f"{_count_and_examples(flagged, query)} {problem}.")


def _off_the_line(rc: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Mask of the queries off the line of the spots ``rc`` where these are collinear (a slide
    that is one row or column); all False where they span two dimensions."""
    centre = rc.mean(axis=0)
    _, singular, vt = np.linalg.svd(rc - centre, full_matrices=False)
    if singular[1] > 1e-9 * singular[0]:
        return np.zeros(len(query), dtype=bool)
    return np.abs((query - centre) @ vt[1]) > 1e-6


def _extrapolated(pos: np.ndarray, query: np.ndarray, radius: float) -> np.ndarray:
    """Mask of the queries (lattice units) outside the convex hull of the observed spots
    ``pos`` and farther than ``radius`` spacings from every one of them, i.e. without a
    neighbour in the model's graph."""
    spacing = lattice_spacing(pos)
    nearest, _ = cKDTree(pos).query(query, k=1)
    try:
        hull = ConvexHull(pos)
        inside = (query @ hull.equations[:, :2].T + hull.equations[:, 2] <= 1e-9 * spacing).all(axis=1)
    except (QhullError, ValueError):  # collinear spots span no area
        inside = np.zeros(len(query), dtype=bool)
    return ~inside & (nearest > radius * spacing)


def _coordinate_column(observed: pd.Series, new: np.ndarray) -> np.ndarray:
    """An array coordinate of the original spots, then of the new ones, as numbers (a
    categorical becomes its values); of the input's integer type when it was one and
    holds every value (imputed lattice sites), int64 when only that type is too
    narrow (e.g. a row -1 of ``uint8`` coordinates), float otherwise."""
    if isinstance(observed.dtype, pd.CategoricalDtype):
        observed = observed.astype(observed.cat.categories.dtype)
    values = np.concatenate([observed.to_numpy(dtype=float), new])
    if not (pd.api.types.is_integer_dtype(observed.dtype) and np.array_equal(values, np.round(values))):
        return values
    dtype = observed.dtype if isinstance(observed.dtype, np.dtype) else np.dtype(np.int64)
    info = np.iinfo(dtype)
    fits = info.min <= values.min() and values.max() <= info.max
    return values.astype(dtype if fits else np.int64)


def _assemble(adata, values, counts, predicted, query, new_spatial, counts_layer) -> AnnData:
    names = [f"imputed-{r:g}-{c:g}" for r, c in query]
    obs = adata.obs.copy()
    obs["imputed"] = False
    obs = pd.concat([obs, pd.DataFrame({"imputed": True}, index=names)]) if len(query) else obs
    for k, key in enumerate(("array_row", "array_col")):
        obs[key] = _coordinate_column(adata.obs[key], query[:, k])
    # The new spots have no value in the other columns: concat makes a column object
    # where that would be unwritable to h5ad (a categorical or bool one with NaN).
    for key, column in adata.obs.drop(columns=["array_row", "array_col"]).items():
        if isinstance(column.dtype, pd.CategoricalDtype):
            obs[key] = pd.Categorical(obs[key], categories=column.cat.categories, ordered=column.cat.ordered)
        elif pd.api.types.is_bool_dtype(column.dtype):
            obs[key] = obs[key].astype("boolean")
    # squidpy's spatial_scatter(library_key=...) leaves out spots without a library id.
    for key, (library,) in library_columns(adata).items():
        obs.loc[names, key] = library
    spatial = np.asarray(adata.obsm["spatial"], dtype=float)
    for key, k in _pixel_columns(adata.obs, spatial).items():
        obs[key] = np.concatenate([spatial[:, k], new_spatial[:, k]])
    obs["imputed"] = obs["imputed"].astype(bool)
    n_new = len(query)
    out = AnnData(
        X=np.vstack([values, predicted.astype(np.float32)]),
        obs=obs,
        var=adata.var.copy(),
        uns=copy.deepcopy(dict(adata.uns)),
    )
    out.layers[counts_layer] = sp.vstack([sp.csr_matrix(counts), sp.csr_matrix((n_new, counts.shape[1]), dtype=np.float32)]).tocsr()
    out.obsm["spatial"] = np.vstack([spatial, new_spatial])
    return out


def _pixel_columns(obs: pd.DataFrame, spatial: np.ndarray) -> dict[str, int]:
    """The numeric ``obs`` columns that copy a column ``k`` of the spots' pixel
    coordinates ``spatial`` exactly, spot for spot (e.g. ``pixel_x`` / ``pixel_y`` of
    legacy ST sets), with that ``k``: the new spots' pixel coordinates are known."""
    found = {}
    for key, column in obs.drop(columns=["array_row", "array_col"]).items():
        if not (isinstance(column.dtype, np.dtype) and column.dtype.kind in "iuf"):
            continue
        values = column.to_numpy(dtype=float)
        for k in range(spatial.shape[1]):
            if np.array_equal(values, spatial[:, k]):
                found[key] = k
                break
    return found


def _fill_in_tissue(obs: pd.DataFrame, observed: pd.Series, neighbours: tuple[np.ndarray, np.ndarray]) -> None:
    """Give the new spots of ``obs`` (the last ones) scanpy's ``in_tissue`` flag: in the
    tissue (1, or True) where every observed spot nearest them (``neighbours``, from
    :func:`~stgraph.spots._lattice.nearest_spots`) is.

    Left missing unless ``observed`` is a plain bool or integer column: a new spot
    with NaN there was dropped by the usual ``adata[adata.obs['in_tissue'] == 1]``.
    """
    if not (isinstance(observed.dtype, np.dtype) and observed.dtype.kind in "biu"):
        return
    index, nearest = neighbours
    inside = np.where(nearest, observed.to_numpy().astype(bool)[index], True).all(axis=1)
    obs["in_tissue"] = np.concatenate([observed.to_numpy(), inside.astype(observed.dtype)])


def library_columns(adata: AnnData) -> dict:
    """The ``obs`` columns all of whose values are library ids of ``uns['spatial']``
    (squidpy's ``library_key``), with the distinct ids of each."""
    libraries = adata.uns.get("spatial", {})
    found = {}
    for key, column in adata.obs.items():
        values = list(column.unique())
        if all(isinstance(value, str) and value in libraries for value in values):
            found[key] = sorted(values)
    return found


def _check_one_library(adata: AnnData) -> None:
    """Refuse spots of several slides: one lattice and one map to pixel coordinates
    cannot hold them (their array coordinates overlap, their pixels are unrelated)."""
    for key, ids in library_columns(adata).items():
        if len(ids) > 1:
            raise ValueError(
                f"`obs[{key!r}]` holds {len(ids)} libraries of `uns['spatial']` ({ids}): enhance works on one "
                f"slide at a time. {one_library_hint(key)}"
            )


def one_library_hint(key: str) -> str:
    """The advice of :func:`_check_one_library` for the library column ``obs[key]`` (the
    console command gives its own, as for :data:`OFF_TISSUE_HINT`)."""
    return (
        f"Enhance each, e.g. `[sg.tl.enhance(adata[adata.obs[{key!r}] == library].copy()) for library in ...]`, "
        "and join the results with `anndata.concat(..., uns_merge='unique')`."
    )


def _earlier_diameter_scale(uns) -> float:
    """The factor an earlier ``tl.enhance`` applied to the spot diameters of ``uns``.

    The measured spots of an earlier output (``adata[~adata.obs['imputed']]``, as its
    refusal advises) carry its ``uns``: a super-resolution halved their diameter for
    the finer lattice, which their own spots do not have.
    """
    record = uns.get("enhance")
    if isinstance(record, Mapping) and record.get("mode") == "super_resolution":
        return 0.5  # the only factor enhance supports
    return 1.0


def _scale_spot_diameter(uns: dict, scale: float) -> None:
    for library in uns.get("spatial", {}).values():
        factors = library.get("scalefactors", {}) if isinstance(library, dict) else {}
        if "spot_diameter_fullres" in factors:
            factors["spot_diameter_fullres"] = factors["spot_diameter_fullres"] * scale

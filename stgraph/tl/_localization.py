"""``stgraph.tl.localization``: RNA localization patterns, compartments and gene scores."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import shapely
import spatialdata
import torch

from stgraph._validation import check_bool, check_int, check_not_one_name, check_seed
from stgraph._warnings import warn_user
from stgraph.io import check_table
from stgraph.io._table import ensure_table
from stgraph.io import _schema as S
from stgraph.io._spatialdata import check_spatialdata
from stgraph.io._table import region_rows, table_cell_ids
from stgraph.localization._compartment import predict_compartment
from stgraph.localization._data import CellTranscripts, read_cell_transcripts
from stgraph.localization._gene_score import nuclear_enrichment
from stgraph.localization._pattern_model import PATTERNS, PatternModel, pattern_batch
from stgraph.localization._pretrained import load_pretrained
from stgraph.tl._points_output import set_points_columns

_COMPARTMENT_MODES = ("auto", "outlines", "withheld", None)


def localization(
    sdata: spatialdata.SpatialData,
    *,
    points_key: str = "transcripts",
    cell_key: str = "cell_boundaries",
    nucleus_key: str | None = "nucleus_boundaries",
    table_key: str = "table",
    min_transcripts: int = 5,
    compartment: str | None = "auto",
    training_cells: Sequence[str] | None = None,
    model: PatternModel | str | Path | None = None,
    n_boot: int = 200,
    seed: int = 0,
    copy: bool = False,
) -> spatialdata.SpatialData | None:
    """Localization pattern of every (cell, gene), compartment of every transcript.

    **Patterns.** For every (cell, gene) with at least ``min_transcripts``
    molecules, the probabilities of Bento's five patterns (``cell_edge``,
    ``cytoplasmic``, ``none``, ``nuclear``, ``nuclear_edge``) from the pattern head
    (:class:`stgraph.localization.PatternModel`; attention pooling over the gene's
    molecules in the cell with the cell and nucleus geometry as features). As in
    Bento the call is multilabel: a pattern is called when its probability reaches
    its threshold (``model.thresholds``); the *top pattern* is the most probable
    one. Cells without a nucleus outline are scored too (the model was trained with
    such cells), but ``nuclear``/``nuclear_edge`` are then hard to tell apart from
    ``none``/``cytoplasmic``.

    **Compartment.** The probability that each molecule is nuclear, from a small
    model fitted on the cells that have a nucleus outline (label: inside the
    polygon), see :func:`stgraph.localization.predict_compartment`. Mode
    ``"outlines"`` (= ``"auto"``) uses the nucleus outline as a feature where the
    cell has one and the outline-free features elsewhere; ``"withheld"`` never uses
    outlines as features (position in the cell, gene, neighbours' genes and local
    density in the transcript graph). Cells without a nucleus thus always get the
    outline-free prediction.

    **Gene score.** Nuclear-enrichment score of every gene (log-odds of nuclear vs
    cytoplasmic from the compartment probabilities, relative to all molecules) with
    an interval that accounts for counting noise and for variation between cells
    (measured by a bootstrap over cells), see
    :func:`stgraph.localization.nuclear_enrichment`.

    Everything here is computed in the plane: cell and nucleus outlines are 2D
    polygons, so a ``z`` column, when present, is not used. Control probes
    (``is_control``) are scored as genes (patterns, ``p_nuclear`` and their own score,
    a reference for chance localization) and count among all molecules that the
    gene scores are relative to; read the data with ``drop_controls=True`` to leave
    them out.

    Parameters
    ----------
    sdata
        Data with points ``points_key`` (columns ``x``, ``y``, ``gene``,
        ``cell_id``) and cell outlines ``cell_key``; nucleus outlines
        ``nucleus_key`` are optional (indexed by the id of their cell, or by other
        ids and then given to the cell holding most of their area; several nuclei of a cell
        are merged): None, or the default name missing from the data, means no
        nuclei; another name must exist.
    points_key, cell_key, nucleus_key, table_key
        Element names. The table is created (cells x genes counts, annotated to
        the outlines ``cell_key``) when missing;
        an existing one must hold every cell and gene with a molecule
        (:func:`stgraph.io.check_table`; one annotated to outlines may lack cells
        without an outline there, as a :func:`spatialdata.bounding_box_query` crop
        leaves it, but not the cells scored here). In a table annotating several
        outlines (samples joined by :func:`spatialdata.concatenate`, whose cell ids may
        repeat) the cells of ``cell_key`` are its rows of that region; the other rows
        get ``nan``.
    min_transcripts
        Minimum molecules of a gene in a cell for a pattern call (Bento's
        ``min_count``; default 5). Smaller groups get ``nan``. The shipped head
        learned from groups of at least 5 molecules
        (``model.training_info["min_transcripts"]``): below that its probabilities
        are not calibrated (with 1, three of the four single molecules of
        ``simulate(6, 8, seed=1)`` got 0.99 or more for one pattern).
    compartment
        ``"auto"``, ``"outlines"``, ``"withheld"``, or ``None`` to skip the
        compartment and gene score.
    training_cells
        Ids of the cells whose nuclei train the compartment model, a non-empty list
        (default: every cell with a nucleus outline); a ValueError with
        ``compartment=None``, which fits no compartment model.
    model
        A :class:`~stgraph.localization.PatternModel` or a path written by its
        ``save`` (read by :meth:`~stgraph.localization.PatternModel.load`, before any
        other work); default the checkpoint shipped with stgraph. Its
        ``thresholds`` (one per pattern of ``PATTERNS``, in [0, 1]) make the calls
        of ``lp``: to call more or fewer, change them on a loaded model (e.g.
        ``m = stgraph.localization.load_pretrained(); m.thresholds[3] = 0.6``) and pass
        it here; they do not change ``top_pattern``.
    n_boot
        Bootstrap replicates over cells that measure the between-cell variation
        widening the gene-score interval (a positive integer).
    seed
        Non-negative seed of the token subsampling of large groups, the compartment
        fit and the bootstrap. The same seed gives identical results for the same
        rows on the CPU (another number of torch threads changes ``p_nuclear`` and
        the gene scores by rounding only: by less than 1e-13 on the MERFISH sample).
        The draws follow the transcripts' row order: the same rows in another order
        change the results as another seed does (on the MERFISH sample without its
        duplicates, ``p_nuclear`` by up to 0.27 and the top pattern of 4 of 1,747
        cell-genes; seed 1 instead of 0: by up to 0.55, and 4), while another order of
        the gene or cell categories changes them by rounding only (less than 1e-7).
    copy
        Return a modified copy instead of writing into ``sdata``.

    Returns
    -------
    ``None``, or the copy if ``copy=True``. Written:

    ``tables[table_key].layers[f"{pattern}_p"]``
        cells x genes probability of each pattern (``float32``, ``nan`` where the
        gene has fewer than ``min_transcripts`` molecules in the cell, for genes
        absent from the cell and for empty cells).
    ``tables[table_key].uns["lp"]``
        Long table, one row per scored (cell, gene): ``cell_id``, ``gene``, one
        0/1 column per pattern (``uint8``, the multilabel call: ``lpp[pattern] >=
        uns["localization"]["thresholds"][pattern]``), a row of zeros where no
        probability reaches its threshold (12 of the 1,747 cell-genes of the
        MERFISH sample without duplicates; their ``top_pattern`` is still the most
        probable pattern). As in Bento the id columns
        bear the names of the points' ``instance_key`` and ``feature_key``, in
        stgraph's schema always ``cell_id`` and ``gene``: Bento's objects name them
        ``cell_boundaries`` and ``feature_name``, which
        :func:`stgraph.io.from_spatialdata` renames, so Bento code that reads the
        keys from the points' ``attrs`` runs unchanged and code that spells Bento's
        names needs stgraph's.
    ``tables[table_key].uns["lpp"]``
        Same rows with the probabilities, plus ``top_pattern`` and
        ``n_transcripts``.
    ``tables[table_key].uns["lp_stats"]``
        Per gene (index) scored in at least one cell, as in Bento, the number of
        cells where each pattern is called; genes never scored have no row.
    ``tables[table_key].var``
        ``nuclear_score``, ``nuclear_score_ci_low``, ``nuclear_score_ci_high``
        (95 % interval), ``nan`` for genes without molecules in cells or when no
        compartment was computed.
    ``tables[table_key].uns["localization"]``
        ``min_transcripts``, ``pattern_model`` (``"shipped"``, the checkpoint path
        given, or ``"given"`` for a model object), ``thresholds``, ``compartment``
        (the mode asked for), ``training_cells``, ``n_boot`` and ``seed``.
    ``points[points_key]["pattern"]``
        Top pattern of the molecule's (cell, gene) (categorical, ``nan`` when not
        scored or outside cells), ``lpp["top_pattern"]``. Bento's column of that
        name holds the most probable of the *called* patterns instead, ``nan`` when
        none is called: the two differ where the most probable pattern stays below
        its threshold.
    ``points[points_key]["p_nuclear"]``
        Nuclear probability (``nan`` outside cells or when not computed).

    A new run replaces all of these, whatever the earlier run's settings: a
    (cell, gene) it scored and this one does not (a larger ``min_transcripts``) is
    ``nan`` in the layers and has no row in ``lp`` / ``lpp``, and ``compartment=None``
    leaves ``p_nuclear`` and the gene scores ``nan``; the table's other contents
    (your own ``obs``, ``uns`` entries) are kept.
    The two points columns hold the last run's values whatever its ``table_key``: to
    keep two runs' molecules apart (say the shipped and a retrained pattern model),
    run one with ``copy=True``.

    Raises
    ------
    KeyError
        If ``points_key`` is not a points element of ``sdata``.
    FileNotFoundError
        If ``model`` is a path with no file.
    ValueError
        For a ``model`` file that is not a pattern model checkpoint (a masked gene
        model's, say; :meth:`~stgraph.localization.PatternModel.load`), a model whose
        ``thresholds`` are not one value in [0, 1] per pattern, missing shapes elements or columns, outlines that are neither polygons
        nor circles of positive radius (circles are read as discs), outlines whose
        transformation differs from the points' (their coordinates would not align;
        :func:`stgraph.io.from_spatialdata` applies them), bad parameters, empty,
        repeated or unknown training cells (or any with ``compartment=None``),
        training cells without an outline in ``cell_key`` or without a nucleus
        (each named), no transcript in any cell, an existing
        table ``table_key`` that lacks some of the genes or of the cells scored, or, when there is
        none, a ``table_key`` SpatialData would refuse for a new table (invalid, or
        held by another element, ignoring case; :func:`stgraph.io.check_table`).
    TypeError
        For ``sdata`` that is not a SpatialData, a ``model`` of the wrong type,
        ``training_cells`` given as a single string, a ``nucleus_key`` neither a
        string nor None, or ``copy`` that is not a bool
        (``copy="False"`` would be true).

    Warns
    -----
    UserWarning
        When transcripts are assigned to cell ids without an outline in
        ``cell_key``: those cells are not scored (their table rows stay ``nan``);
        the warning names how many, with examples. And when a compartment is asked
        for but no training cell with a nucleus outline holds both nuclear and
        other transcripts (no nucleus outline at all, say): ``p_nuclear`` and the
        gene scores are then ``nan``. And when the outlines do not fit: nuclei
        with more than 1 % of their area outside their cell (e.g. measured nuclei
        against cells drawn around the molecules alone: half of the Xenium lung
        sample's, which :func:`stgraph.io.outlines_from_transcripts` now grows to hold
        them; a nucleus given to two cells), or molecules farther outside the outline of
        the cell they are assigned to than 1 % of its equivalent radius. Both are
        used as given: ``in_nucleus`` and the distances to the nucleus follow its
        whole outline, a stray molecule counts as inside at its distance from the
        outline. And when cells holding molecules have more than 1 % of their area outside the
        bounding box of the transcripts, widened by two mean spacings of the cell's
        molecules (data cropped to a box, e.g. by
        :func:`spatialdata.bounding_box_query`, which keeps the outlines of the cells
        it cuts whole but drops their molecules outside it): they are scored on the
        molecules left; the warning names how many, with examples. And when outlines are invalid polygons (repaired with
        :func:`shapely.make_valid`, the element left as it is) or nucleus outlines
        neither carry a cell id nor overlap a cell (they are left out).
    """
    check_spatialdata(sdata)
    copy = check_bool("copy", copy)
    check_int("min_transcripts", min_transcripts)
    check_int("n_boot", n_boot)
    seed = check_seed(seed)  # a NumPy integer would fail in torch.Generator.manual_seed
    if compartment not in _COMPARTMENT_MODES:
        raise ValueError(f"compartment must be one of {_COMPARTMENT_MODES}, got {compartment!r}")
    if training_cells is not None:
        if compartment is None:
            raise ValueError("training_cells trains the compartment model, which compartment=None leaves out")
        check_not_one_name("training_cells", training_cells)
        training_cells = list(training_cells)
        if not training_cells:
            raise ValueError("training_cells is empty: pass at least one cell id, or None for every cell with a nucleus")
        named = pd.Index([str(c) for c in training_cells])
        if named.has_duplicates:
            repeated = list(named[named.duplicated()].unique())[:5]
            raise ValueError(f"training_cells names some cells more than once: {repeated}")
    pattern_model, model_source = _resolve_model(model)
    _check_thresholds(pattern_model.thresholds)
    check_table(sdata, table_key, points_key)
    if copy:
        sdata = spatialdata.deepcopy(sdata)

    points, transcripts = read_cell_transcripts(
        sdata, points_key=points_key, cell_key=cell_key, nucleus_key=nucleus_key
    )
    if len(transcripts.xy) == 0:
        raise ValueError(f"no transcript of {points_key!r} is assigned to a cell of {cell_key!r}")
    _check_scored_rows(sdata, table_key, cell_key, transcripts)
    _warn_outlines_that_do_not_fit(transcripts)
    _warn_cells_beyond_the_transcripts(points, transcripts)
    groups = transcripts.groups(min_transcripts)
    batch = pattern_batch(transcripts, groups, pattern_model.context_radius, seed=seed)
    probabilities = pattern_model.predict_proba(batch)
    thresholds = pattern_model.thresholds.numpy().astype(float)
    cell_ids = transcripts.geometry.cell_ids
    gene_names = transcripts.gene_names
    keys = pd.DataFrame(
        {
            # Categories unnamed, as a zarr store or h5ad file reads them back (the
            # outlines' index named them "cell_id").
            "cell_id": pd.Categorical.from_codes(groups.cell, categories=cell_ids.rename(None)),
            "gene": pd.Categorical.from_codes(groups.gene, categories=gene_names),
        }
    )
    top = probabilities.argmax(1) if len(groups) else np.zeros(0, dtype=int)
    lp = pd.concat([keys, pd.DataFrame((probabilities >= thresholds).astype(np.uint8), columns=list(PATTERNS))], axis=1)
    lpp = pd.concat([keys, pd.DataFrame(probabilities.astype(float), columns=list(PATTERNS))], axis=1)
    lpp["top_pattern"] = pd.Categorical.from_codes(top, categories=PATTERNS)
    lpp["n_transcripts"] = groups.n_transcripts

    p_nuclear, used_training = _compartment(transcripts, compartment, training_cells, seed, points, cell_key)
    if np.isnan(p_nuclear).any():  # no compartment: no score, and no bootstrap to run for it
        score = pd.DataFrame(np.nan, index=range(len(gene_names)), columns=["score", "ci_low", "ci_high"])
    else:
        score = nuclear_enrichment(
            p_nuclear, transcripts.gene, transcripts.cell, len(gene_names), len(cell_ids), n_boot=n_boot, seed=seed
        )

    table, rows, cols = _table(sdata, table_key, points_key, cell_key, transcripts)
    group_row, group_col = rows[groups.cell], cols[groups.gene]
    placed = (group_row >= 0) & (group_col >= 0)
    for k, pattern in enumerate(PATTERNS):
        layer = np.full(table.shape, np.nan, dtype=np.float32)
        layer[group_row[placed], group_col[placed]] = probabilities[placed, k]
        table.layers[f"{pattern}_p"] = layer
    # Bento's rows: the genes scored in at least one cell, so that a missing gene (not
    # scored) stays distinct from one scored but with no pattern called (a row of 0).
    lp_stats = lp.groupby("gene", observed=True)[list(PATTERNS)].sum().astype(int)
    table.uns["lp"] = lp
    table.uns["lpp"] = lpp
    table.uns["lp_stats"] = lp_stats
    gene_of_var = gene_names.get_indexer(table.var_names)
    for column, name in (("score", "nuclear_score"), ("ci_low", "nuclear_score_ci_low"), ("ci_high", "nuclear_score_ci_high")):
        values = score[column].to_numpy()
        table.var[name] = np.where(gene_of_var >= 0, values[gene_of_var], np.nan)
    table.uns["localization"] = {
        "min_transcripts": int(min_transcripts),
        "pattern_model": model_source,
        "thresholds": dict(zip(PATTERNS, thresholds.tolist())),
        "compartment": "none" if compartment is None else compartment,
        "training_cells": [str(c) for c in cell_ids[used_training]],
        "n_boot": int(n_boot),
        "seed": int(seed),
    }
    sdata.tables[table_key] = table

    pattern_codes = np.full(transcripts.n_points, -1)
    scored = groups.member >= 0
    pattern_codes[transcripts.index[scored]] = top[groups.member[scored]]
    molecule_p = np.full(transcripts.n_points, np.nan)
    molecule_p[transcripts.index] = p_nuclear
    set_points_columns(
        sdata,
        points_key,
        points,
        {"pattern": pd.Categorical.from_codes(pattern_codes, categories=PATTERNS), "p_nuclear": molecule_p},
    )
    return sdata if copy else None


def _resolve_model(model) -> tuple[PatternModel, str]:
    """The pattern model and how it was given, for ``uns['localization']``."""
    if model is None:
        return load_pretrained(), "shipped"
    if isinstance(model, PatternModel):
        return model, "given"
    if isinstance(model, (str, Path)):
        return PatternModel.load(model), str(model)
    raise TypeError(f"model must be a PatternModel, a path or None, got {type(model).__name__}")


def _check_thresholds(thresholds) -> None:
    """Refuse thresholds that are not one number in [0, 1] per pattern: one value was
    broadcast to every pattern (and only the first recorded), ``nan`` called nothing."""
    if not isinstance(thresholds, torch.Tensor) or tuple(thresholds.shape) != (len(PATTERNS),):
        shape = tuple(thresholds.shape) if isinstance(thresholds, torch.Tensor) else type(thresholds).__name__
        raise ValueError(f"model.thresholds must be a tensor of {len(PATTERNS)} values, one per pattern of {PATTERNS}, got {shape}")
    values = thresholds.detach().double()
    if not bool(((values >= 0) & (values <= 1)).all()):
        raise ValueError(f"model.thresholds must lie in [0, 1], got {dict(zip(PATTERNS, values.tolist()))}")


def _compartment(
    transcripts: CellTranscripts,
    mode: str | None,
    training_cells: Sequence[str] | None,
    seed: int,
    points: pd.DataFrame,
    cell_key: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Nuclear probabilities (``nan`` if not computed) and the training cells used;
    ``points`` and ``cell_key`` name the training cells that are not outlined cells."""
    geometry = transcripts.geometry
    none = np.zeros(0, dtype=np.int64)
    if mode is None:
        return np.full(len(transcripts.xy), np.nan), none
    positions = None
    if training_cells is not None:
        ids = pd.Index([str(c) for c in training_cells])
        positions = geometry.cell_ids.get_indexer(ids)
        if (positions < 0).any():
            absent = ids[positions < 0]
            # a cell of the transcripts without an outline is no unknown id: say what it lacks
            in_points = absent.isin(points[S.CELL].dropna().astype(str).unique())
            problems = [
                f"{what} {list(absent[where])[:5]}"
                for what, where in (
                    ("unknown cell ids", ~in_points),
                    (f"cells with transcripts but no outline in {cell_key!r}", in_points),
                )
                if where.any()
            ]
            raise ValueError(f"training_cells: {'; '.join(problems)}")
        if not geometry.has_nucleus[positions].all():
            raise ValueError(f"training_cells: cells without nucleus outline {list(ids[~geometry.has_nucleus[positions]])[:5]}")
    trainable = geometry.has_nucleus if positions is None else np.isin(np.arange(len(geometry)), positions)
    labels = transcripts.transcript_geometry.in_nucleus[np.isin(transcripts.cell, np.flatnonzero(trainable))]
    if labels.size == 0 or labels.all() or not labels.any():
        warn_user(
            "localization: no cell with a nucleus outline holds both nuclear and other transcripts; "
            "p_nuclear and the gene scores are nan"
        )
        return np.full(len(transcripts.xy), np.nan), none
    result = predict_compartment(
        transcripts, mode="outlines" if mode == "auto" else mode, training_cells=positions, seed=seed
    )
    return result.p_nuclear, result.training_cells


#: Beyond this share of a nucleus' area outside its cell, or of a cell's equivalent
#: radius between a molecule of the cell and its outline (outside), the outlines are
#: said not to fit (the MERFISH sample's molecules lie in or on their outlines); beyond
#: this share of a cell's area outside the transcripts' extent (widened by
#: :data:`_CUT_MARGIN`), the cell is said to be cut.
_FIT_TOLERANCE = 0.01
#: Mean spacings of a cell's molecules (``sqrt(area / count)``) by which the transcripts'
#: extent is widened for that cell: an edge cell of a whole sample reaches beyond its
#: last molecule by about a spacing (up to 0.24 % of a MERFISH cell's area lies beyond
#: the extent itself, and 30 % of a cell holding 40 molecules in its inner 80 % of width).
_CUT_MARGIN = 2.0


def _warn_cells_beyond_the_transcripts(points: pd.DataFrame, transcripts: CellTranscripts) -> None:
    """Warn of cells whose outline reaches beyond the bounding box of the transcripts:
    data cropped to a box (``spatialdata.bounding_box_query``) keep the outlines of the
    cells it cuts whole but drop their molecules outside it, and these cells would be
    scored on the molecules left as if they were all. Cells without molecules are not
    scored, so they are not named."""
    x, y = points[S.X].to_numpy(dtype=np.float64), points[S.Y].to_numpy(dtype=np.float64)
    geometry = transcripts.geometry
    counts = np.bincount(transcripts.cell, minlength=len(geometry.cells))
    margin = _CUT_MARGIN * np.sqrt(geometry.area / np.maximum(counts, 1))
    low = np.stack([np.nanmin(x) - margin, np.nanmin(y) - margin], axis=1)
    high = np.stack([np.nanmax(x) + margin, np.nanmax(y) + margin], axis=1)
    bounds = shapely.bounds(geometry.cells)
    # A cell within its widened box has nothing outside; intersecting only the others
    # keeps this check at milliseconds for 10^5 cells (1.4 s intersecting them all).
    check = np.flatnonzero((counts > 0) & ((bounds[:, :2] < low) | (bounds[:, 2:] > high)).any(axis=1))
    extent = shapely.box(low[check, 0], low[check, 1], high[check, 0], high[check, 1])
    outside = np.zeros(len(geometry.cells))
    outside[check] = 1.0 - shapely.area(shapely.intersection(geometry.cells[check], extent)) / geometry.area[check]
    cut = np.flatnonzero(outside > _FIT_TOLERANCE)
    if len(cut):
        worst = cut[np.argsort(-outside[cut], kind="stable")[:3]]
        examples = {geometry.cell_ids[c]: f"{outside[c]:.0%}" for c in worst}
        warn_user(
            f"localization: {len(cut)} cell outline(s) reach beyond the extent of the transcripts (share of the "
            f"cell outside their bounding box, widened by {_CUT_MARGIN:g} spacings of the cell's molecules: "
            f"{examples}); the data look cropped (a crop such as "
            "spatialdata.bounding_box_query keeps the outlines of the cells it cuts whole but drops their "
            "molecules outside the box), so these cells are scored on part of their molecules and their "
            "patterns may be wrong; crop with a margin and keep the results of the cells wholly inside"
        )


def _warn_outlines_that_do_not_fit(transcripts: CellTranscripts) -> None:
    """Warn of nuclei reaching outside their cell and of molecules lying outside the
    outline of the cell they are assigned to: both are used as given, so the
    geometry the models read is not that of a nucleus in its cell."""
    geometry = transcripts.geometry
    with_nucleus = np.flatnonzero(geometry.has_nucleus)
    # Valid already: the outlines were read through outline_geometry, which repairs them.
    nuclei, cells = geometry.nuclei[with_nucleus], geometry.cells[with_nucleus]
    outside = np.zeros(len(with_nucleus))
    loose = ~shapely.covers(cells, nuclei)  # cheaper than a difference, and true of most
    outside[loose] = shapely.area(shapely.difference(nuclei[loose], cells[loose])) / shapely.area(nuclei[loose])
    beyond = outside > _FIT_TOLERANCE
    if beyond.any():
        worst = np.argsort(-outside[beyond], kind="stable")[:3]
        examples = {geometry.cell_ids[c]: f"{share:.0%}" for c, share in zip(with_nucleus[beyond][worst], outside[beyond][worst])}
        warn_user(
            f"localization: {int(beyond.sum())} nucleus outline(s) reach outside their cell (share of the nucleus "
            f"outside: {examples}); they are used as given (in_nucleus and the distances to the nucleus follow the "
            "whole outline); clip them to their cells (nucleus.intersection(cell)) where they should not"
        )
    tg = transcripts.transcript_geometry
    stray = ~tg.in_cell & (tg.cell_distance > _FIT_TOLERANCE * geometry.equivalent_radius[transcripts.cell])
    if stray.any():
        cells_of = pd.unique(geometry.cell_ids[transcripts.cell[stray]])
        warn_user(
            f"localization: {int(stray.sum())} molecule(s) of {len(cells_of)} cell(s) lie outside the outline of "
            f"the cell they are assigned to (e.g. {list(cells_of[:3])}); they are scored as if inside, at their "
            "distance from the outline"
        )


def _check_scored_rows(
    sdata: spatialdata.SpatialData, table_key: str, cell_key: str, transcripts: CellTranscripts
) -> None:
    """Refuse an existing table without a row for some cell about to be scored.

    :func:`stgraph.io.check_table` lets a table annotated to outlines lack the cells
    without one there; outlines ``cell_key`` other than the table's can hold such cells.
    """
    if table_key not in sdata.tables:
        return
    table = sdata.tables[table_key]
    scored = transcripts.geometry.cell_ids[np.unique(transcripts.cell)]
    missing = scored[~scored.isin(table_cell_ids(table)[region_rows(table, cell_key)])]
    if len(missing):
        raise ValueError(
            f"table {table_key!r} has no row for {len(missing)} cell(s) with transcripts and an outline in "
            f"{cell_key!r} (e.g. {missing[:5].tolist()}). Delete sdata.tables[{table_key!r}] or pass a "
            "table_key that is not in sdata.tables to get a fresh cells x genes table"
        )


def _table(
    sdata: spatialdata.SpatialData, table_key: str, points_key: str, cell_key: str, transcripts: CellTranscripts
) -> tuple[ad.AnnData, np.ndarray, np.ndarray]:
    """The table to write into (:func:`stgraph.io.get_table`), and the table row /
    column of every cell / gene position (``-1`` when the table lacks it)."""
    cell_ids, gene_names = transcripts.geometry.cell_ids, transcripts.gene_names
    table = ensure_table(sdata, table_key, points_key, cell_key)
    rows = np.full(len(cell_ids), -1)
    found = cell_ids.get_indexer(table_cell_ids(table))
    # The rows of other samples of a joined table: their cells may bear the same ids.
    found[~region_rows(table, cell_key)] = -1
    rows[found[found >= 0]] = np.flatnonzero(found >= 0)
    cols = pd.Index(table.var_names).get_indexer(gene_names)
    return table, rows, cols

"""Gene colocalization from the transcript graph and a pretrained encoder's attention."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from spatialdata import SpatialData
from torch_geometric.data import Data

from .._validation import check_bool, check_int
from .._warnings import warn_user
from ..coloc import ColocalizationResult, score_pairs
from ..coloc._score import PRIOR_EVENTS, check_score_arguments
from ..coloc._encode import MAX_EDGES, check_returns_attention, edge_attention, encoder_outputs
from ..io import TABLE_KEY, check_table
from ..io._table import ensure_table
from ..io._spatialdata import check_spatialdata
from ..io import _schema as S
from ..models.mgm import warn_other_radius
from ._graph_input import graph_for
from ._output_keys import check_uns_key

#: Default key of the results in the table's ``uns``.
COLOCALIZATION_KEY = "colocalization"
#: The results go to ``uns[key_added + suffix]`` for each of these.
UNS_SUFFIXES = ("", "_params", "_per_cell")


def colocalization(
    sdata: SpatialData,
    model=None,
    *,
    radius: float | None = None,
    graph: Data | None = None,
    attention: np.ndarray | torch.Tensor | Sequence | None = None,
    within: Literal["cell", "all"] = "cell",
    include_controls: bool = False,
    method: Literal["analytic", "permutation"] = "analytic",
    n_perms: int = 1000,
    per_cell: bool = False,
    prior_events: float = PRIOR_EVENTS,
    max_edges: int = MAX_EDGES,
    seed: int = 0,
    points_key: str = S.POINTS_KEY,
    table_key: str = TABLE_KEY,
    key_added: str = COLOCALIZATION_KEY,
    inplace: bool = True,
) -> ColocalizationResult:
    r"""Score the colocalization of every ordered pair of genes.

    For each ordered pair ``(A, B)`` the **attention score** is the attention mass
    that A transcripts give B transcripts along the within-cell edges of the radius
    graph, :math:`M_{A \to B} = \sum_{g_i = A,\, g_j = B} \bar\alpha_{ij}`, with
    :math:`\bar\alpha_{ij}` the attention of target ``i`` on neighbour ``j`` of the
    pretrained encoder averaged over its heads and layers, compared with its
    exact mean and variance under random relabelling of the genes within each cell
    (weights fixed): ``score`` = log2 ratio observed / expected, shrunk toward 0
    for pairs with little evidence (``prior_events``), ``z``, a one-sided ``pval``
    and its Benjamini-Hochberg ``fdr``.
    Without a model or attention the weights are ``1 / deg(i)``: unshrunk
    (``prior_events=0``) the score is then the log2 of ``clq`` when no transcript is
    isolated (one without a neighbour in its cell counts in ``clq``'s expectation
    only). See :func:`stgraph.coloc.score_pairs`.

    On the same edges come the Leslie-Kronenfeld colocation quotient ``clq``,
    Bento's variant ``clq_bento`` (:mod:`stgraph.coloc._clq`) and the InSTAnT-like
    proximal-pairs binomial test ``binom_pval`` / ``binom_fdr``
    (:mod:`stgraph.coloc._binomial`), all pooled over cells.

    **Order and self pairs.** ``(A, B)`` and ``(B, A)`` are two rows: ``score``,
    ``clq``, ``clq_bento``, ``z``, ``pval`` and ``mass`` look from A's transcripts
    and differ in general, while the binomial test counts unordered transcript pairs
    and gives both rows the same ``binom_pval`` and ``binom_fdr``. ``(A, A)`` scores
    a gene's clustering with its own molecules (a transcript is never its own
    neighbour); repeated calls of one molecule inflate it (see
    :func:`stgraph.datasets.merfish_u2os`'s ``drop_duplicates``).

    Memory is linear in the number of edges and of gene pairs that share an edge;
    no cells x genes x genes array is ever built.

    Parameters
    ----------
    sdata
        Data in the stgraph schema.
    model
        Pretrained encoder (result of :func:`stgraph.tl.pretrain`, its model, or a
        :class:`~stgraph.nn.TranscriptEncoder`) whose attention weights the edges;
        None for uniform weights. Its layers must return attention weights (their
        ``forward`` takes ``return_attention_weights``, as
        :class:`~stgraph.nn.SpatialTransformerConv` and PyG's ``GATConv`` or
        ``TransformerConv`` through :class:`~stgraph.nn.EdgeDistAdapter` do); the
        weight a layer puts on edges outside the graph, such as the self-loops
        ``GATConv`` adds by default, is left out. A pretrained model matches genes by
        name: genes of its vocabulary missing from ``sdata`` are fine, a gene of
        ``sdata`` it does not know is refused (it has no embedding for it). A bare
        encoder has no gene names and reads the graph's gene codes as its tokens: the
        graph must have its genes, in its order (another number of genes is refused;
        other genes of the same number cannot be told apart).
    radius
        Radius of the graph in µm (edges within cells only), in 3D when the points
        have ``z`` (see :func:`stgraph.graph.transcript_graph`).
    graph
        A transcript graph to use instead (as built by
        :func:`stgraph.graph.transcript_graph` from ``sdata``; with
        ``within="cell"`` its edges across cells are ignored, with ``"all"`` every
        edge counts); ``radius``, if given too, must equal its radius.
    attention
        Attention weights to use instead of running ``model``: ``(E,)`` (an array,
        a tensor or a list of numbers), ``(E, heads)`` or a list of those per layer,
        of real numbers, aligned with the graph's edges; every weight must be finite
        and non-negative.
    within
        ``"cell"``: edges and relabelling within each cell (unassigned transcripts
        left out; at least one transcript must be in a cell); ``"all"``: the whole
        sample is one unit (data without cells).
    include_controls
        Score control probes too (by default they are left out).
    method
        ``"analytic"`` (exact moments) or ``"permutation"`` null.
    n_perms
        Permutations for ``method="permutation"``. No p-value falls below
        ``1 / (n_perms + 1)``, and the FDR corrects over every ordered pair of genes
        (921,600 for the 960 genes of the CosMx lung sample), so a large panel may
        need more permutations than the default (a warning says how many).
    per_cell
        Also store the per-cell table (quotients and binomial test per cell).
    prior_events
        Shrinkage of ``score`` toward 0 in effective events: the ratio is the
        posterior mean under a Gamma(a, a) prior of strength ``a = prior_events``
        (see :func:`stgraph.coloc.score_pairs`); 0 gives the raw ratio.
    max_edges
        Edges per encoder pass, which bounds its memory: groups of whole cells for a
        within-cell graph, otherwise spatial blocks with a halo of one edge per
        encoder layer; the result equals that of one pass over the whole graph.
    seed
        Non-negative seed of the permutations. They are drawn per transcript in the
        graph's node order (the points' rows): the same rows in another order give
        other permutations, as another seed does, while another order of the gene or
        cell categories gives the same ones. The analytic null draws nothing; rows
        or categories in another order change its numbers by rounding only (uniform
        weights: at most 1.2e-11 in any column on the MERFISH sample; an encoder's
        float32 attention: 1.2e-8 in ``score`` on a simulation; the same pairs passed
        the FDR).
    points_key, table_key
        Points element, and table whose ``uns`` receives the results (created
        with :func:`stgraph.io.get_table` if absent).
    key_added
        ``uns[key_added]``: the pair table (one row per ordered pair sharing an edge,
        columns ``gene_a, gene_b, score, clq, z, pval, fdr, n_cells`` then
        ``clq_bento, binom_pval, binom_fdr, mass, expected``);
        ``uns[key_added + '_params']``: the settings and gene vocabulary;
        ``uns[key_added + '_per_cell']``: the per-cell table when asked. None of
        them may be ``spatialdata_attrs``, a name SpatialData cannot save (it allows
        letters, digits, ``_``, ``-`` and ``.``) or differ only in case from a key
        already there.
    inplace
        Write into the table; False leaves ``sdata`` untouched.

    Returns
    -------
    :class:`~stgraph.coloc.ColocalizationResult`, with
    :meth:`~stgraph.coloc.ColocalizationResult.matrix` (genes x genes) and
    :meth:`~stgraph.coloc.ColocalizationResult.to_networkx` (gene graph).

    Raises
    ------
    KeyError
        If ``points_key`` is not a points element of ``sdata``.
    ValueError
        If an argument is invalid, ``graph`` was built from other transcripts than
        those of ``sdata`` or with another ``radius``, ``key_added`` would overwrite
        the table's ``spatialdata_attrs`` or write keys SpatialData cannot save
        (see ``key_added``), ``within="cell"`` while no transcript
        is assigned to a cell, or (with ``inplace``) an existing table misses cells or
        genes of the data, or a new one's ``table_key`` is not a name SpatialData
        accepts (invalid, or held by another element, ignoring case;
        :func:`stgraph.io.check_table`), or a layer of ``model`` returns no attention
        weights (checked before the graph is built) or none for some edge of the graph,
        or the data hold genes unknown to ``model`` (a bare encoder: another number of
        genes than the graph). Nothing is written then.
    TypeError
        If ``sdata`` is not a SpatialData, ``graph`` is not a torch_geometric
        ``Data``, ``model`` is neither an encoder, a
        pretrained model nor a pretraining result, or ``include_controls``, ``per_cell`` or
        ``inplace`` is not a bool (``inplace="False"`` would be true).

    Warns
    -----
    UserWarning
        When the pair table is empty: no edge joins two scored transcripts (of genes,
        not controls unless ``include_controls``; within a cell with
        ``within="cell"``), e.g. a radius below the spacing of the molecules.
    UserWarning
        With ``method="permutation"``, when pairs exceed every permutation but
        ``n_perms`` is too few for their ``fdr`` to reach 0.05
        (:func:`stgraph.coloc.score_pairs`).
    UserWarning
        When ``model`` was pretrained at another radius than the graph's (where its
        :attr:`~stgraph.models.MaskedGeneModel.radius` is known): its attention
        weighs neighbourhoods of a size it never saw.
    """
    check_spatialdata(sdata)
    include_controls = check_bool("include_controls", include_controls)
    per_cell = check_bool("per_cell", per_cell)
    inplace = check_bool("inplace", inplace)
    if model is not None and attention is not None:
        raise ValueError("pass either model or attention, not both")
    if within not in ("cell", "all"):
        raise ValueError(f"within must be 'cell' or 'all', got {within!r}")
    check_uns_key("key_added", key_added, UNS_SUFFIXES)
    # Checked before the graph is built, which can take long.
    check_score_arguments(method, n_perms, seed, prior_events)
    check_int("max_edges", max_edges)
    if model is not None:
        check_returns_attention(model)
    graph = graph_for(sdata, radius, graph, within, points_key)
    if inplace:
        check_table(sdata, table_key, points_key)  # before anything is written
        if table_key in sdata.tables:
            check_uns_key("key_added", key_added, UNS_SUFFIXES, sdata.tables[table_key].uns)
    if within == "cell" and not bool((graph.cell >= 0).any()):
        raise ValueError(
            "no transcript is assigned to a cell (cell_id is missing or all NaN): colocalization "
            "within='cell' has nothing to score; pass within='all' to pool the whole sample"
        )
    n_edges = graph.edge_index.shape[1]
    if attention is not None:
        weight = edge_attention(attention, n_edges)
    elif model is not None:
        warn_other_radius(model, graph)
        weight = encoder_outputs(model, graph, attention=True, max_edges=max_edges).attention
    else:
        weight = None
    gene = graph.gene.numpy().astype(np.int64)
    if not include_controls and graph.get("is_control") is not None:
        gene = np.where(graph.is_control.numpy(), -1, gene)
    result = score_pairs(
        graph.edge_index.numpy(),
        gene,
        graph.cell.numpy() if within == "cell" else None,
        weight,
        gene_names=list(graph.gene_names),
        cell_names=(list(graph.get("cell_names") or []) or None) if within == "cell" else None,
        method=method,
        n_perms=n_perms,
        seed=seed,
        per_cell=per_cell,
        prior_events=prior_events,
    )
    result.params.update(
        weight="attention" if weight is not None else "uniform",
        radius=float(graph.get("radius") or np.nan),
        include_controls=bool(include_controls),
        within=within,
    )
    if result.table.empty:
        _warn_empty(result.params["radius"], within)
    if inplace:
        result.to_uns(ensure_table(sdata, table_key, points_key).uns, key_added)
    return result


def _warn_empty(radius: float, within: str) -> None:
    """Warn that no edge joins two scored transcripts: an empty table is otherwise
    easy to take for a result with nothing significant in it."""
    where = " in one cell" if within == "cell" else ""
    warn_user(
        f"the pair table is empty: no edge of the graph (radius {radius:g} µm) joins two scored "
        f"transcripts{where}; pass a larger radius"
    )

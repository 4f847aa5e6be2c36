"""Subcellular domains: cluster transcripts by their neighbourhood, in all cells at once."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import torch
from scipy.spatial import cKDTree
from spatialdata import SpatialData
from spatialdata.models import ShapesModel
from spatialdata.transformations import get_transformation
from torch_geometric.data import Data

from .._validation import check_bool, check_int, check_real, check_seed
from .._warnings import warn_user
from ..coloc._encode import MAX_EDGES, masked_embeddings
from ..domains import (
    DomainClustering,
    cell_composition,
    cluster_domains,
    composition_components,
    domain_enrichment,
    domain_polygons,
    neighbourhood_counts,
    neighbourhood_weights,
    predicted_composition_components,
    standardised_block,
)
from ..domains._cluster import check_clustering_arguments
from ..io._shapes import check_hull_arguments
from ..io import TABLE_KEY, check_table
from ..io._table import ensure_table
from ..io._spatialdata import check_element_name, check_spatialdata, optional_shapes, outline_geometry
from ..io import _schema as S
from ..models.mgm import warn_other_radius
from ._graph_input import checked_graph, graph_for
from ._output_keys import SCHEMA_COLUMNS, SCHEMA_SHAPES, check_output_key, check_uns_key
from ._points_output import set_points_columns

#: Default points column of the labels.
DOMAIN_KEY = "domain"
#: Fraction of transcripts in cells without a within-cell neighbour above which domains warn.
ISOLATED_WARNING = 0.5
#: Suffixes of the table ``uns`` keys written under ``key_added``.
UNS_SUFFIXES = ("_enrichment", "_params")
#: Fields of the transcript graph that domains read.
_GRAPH_FIELDS = ("gene", "pos", "edge_index", "edge_dist", "cell", "gene_names", "cell_names")

Representation = Literal["composition", "embedding", "both"]


def default_shapes_key(key_added: str, points_key: str = S.POINTS_KEY) -> str:
    """Default shapes element of the outlines of the domains in column ``key_added`` of
    the points ``points_key``: ``key_added + "_boundaries"``, prefixed by
    ``points_key + "_"`` for points other than ``transcripts``, so that runs on two
    samples of one object keep their own outlines (the second replaced the first's)."""
    name = f"{key_added}_boundaries"
    return name if points_key == S.POINTS_KEY else f"{points_key}_{name}"


@dataclass
class DomainResult:
    """Outputs of :func:`domains`.

    Attributes
    ----------
    labels
        Domain of every node of the graph (categorical ``0 .. k - 1``, by decreasing
        size; NaN for transcripts outside cells), in node order: node ``i`` is row
        ``graph.point_index[i]`` of the points, which is row ``i`` unless the graph
        was built with ``order="spatial"`` (the points column written holds the labels
        in row order).
    enrichment
        Gene enrichment per domain (:func:`stgraph.domains.domain_enrichment`).
    polygons
        Outline of each domain in each cell (:func:`stgraph.domains.domain_polygons`).
    clustering
        The clustering, with the criterion of each ``k`` tried.
    params
        Settings that shaped the result, as plain Python numbers, strings, lists
        and None (h5ad and zarr write them), and the criterion as arrays:
        ``n_domains`` (the ``k`` used), ``criterion_k`` and ``criterion_value``
        (empty when ``n_domains`` was given), ``representation``, ``method``,
        ``radius``, ``bandwidth``, ``n_components``, ``n_passes``, ``seed``,
        ``k_range`` (a list), ``sample_size``, ``hull_ratio``, ``min_transcripts``,
        ``cell_key`` (the cell outlines that clipped the domain outlines; None where
        none did) and ``shapes_key``.
    """

    labels: pd.Categorical
    enrichment: pd.DataFrame
    polygons: gpd.GeoDataFrame
    clustering: DomainClustering
    params: dict = field(default_factory=dict)


def _masked_gene_model(model):
    """The masked gene model inside ``model`` (a model from :func:`stgraph.tl.pretrain` or that result)."""
    model = getattr(model, "model", model)
    if not all(hasattr(model, a) for a in ("encoder", "head", "gene_tokens", "gene_names")):
        raise TypeError(
            "the encoder representation needs a masked gene model with its head (as returned by "
            f"stgraph.tl.pretrain), got {type(model).__name__}"
        )
    return model


def _encoder_context(
    model, encoder_graph: Data, members: np.ndarray, gene_names, n_passes: int, max_edges: int, seed: int
):
    """Masked embeddings of ``members`` and the map from them to probabilities of ``gene_names``."""
    model = _masked_gene_model(model)
    embedding = masked_embeddings(model, encoder_graph, n_passes=n_passes, seed=seed, max_edges=max_edges)
    index = {g: k for k, g in enumerate(model.gene_names)}
    # A gene category without transcripts may be unknown to the model (gene_tokens refuses
    # only the genes of transcripts): it gets probability 0, a zero residual everywhere.
    columns = torch.tensor([index.get(str(g), -1) for g in gene_names])
    known = columns >= 0
    weight = next(model.head.parameters())

    @torch.no_grad()
    def predict(block: np.ndarray) -> np.ndarray:
        # The embeddings come as float32; a head in another dtype (a model converted
        # with .double()) takes them in its own.
        hidden = torch.from_numpy(block).to(device=weight.device, dtype=weight.dtype)
        probabilities = torch.softmax(model.head(hidden).double(), dim=-1).cpu()
        out = torch.zeros(block.shape[0], columns.numel(), dtype=torch.float64)
        out[:, known] = probabilities[:, columns[known]]
        return out.numpy()

    return embedding[members], predict


def _within_cell(graph: Data) -> np.ndarray:
    """Which edges of ``graph`` join two transcripts of the same cell."""
    cell = graph.cell.numpy()
    src, dst = graph.edge_index.numpy()
    return (cell[src] == cell[dst]) & (cell[dst] >= 0)


def _check_members(graph: Data, members: np.ndarray) -> None:
    """Refuse transcripts in cells (``members``) that hold no domain to find: features
    compare a neighbourhood, which lies within one cell, with its cell across genes."""
    if np.bincount(graph.cell.numpy()[members]).max(initial=0) < 2:
        raise ValueError(
            "domains need cells with at least two transcripts (a neighbourhood lies within "
            f"its cell); no cell has two ({members.size} transcripts are in cells)"
        )
    genes = np.unique(graph.gene.numpy()[members])
    if genes.size < 2:
        raise ValueError(
            "domains need transcripts of at least two genes in cells (a domain is a place where "
            f"some genes are denser than in the rest of the cell); all are {graph.gene_names[genes[0]]!r}"
        )


def _check_enough_members(graph: Data, members: np.ndarray, n_domains: int | None, k_range: tuple[int, int]) -> None:
    """Refuse too few transcripts in cells (``members``) for ``n_domains`` or ``k_range``
    before the features are made; the count is named as that of the transcripts in
    cells, which a sample with many outside cells exceeds."""
    counted = (
        f"{members.size} transcripts assigned to cells (of {graph.num_nodes} in the sample; "
        "transcripts outside cells get no domain)"
    )
    if n_domains is not None and n_domains > members.size:
        raise ValueError(f"cannot make {n_domains} domains out of {counted}")
    if n_domains is None and k_range[0] > members.size - 1:
        raise ValueError(f"{counted} are too few to choose k in {k_range}")


def _check_neighbourhoods(graph: Data, within: np.ndarray, members: np.ndarray, radius: float) -> None:
    """Refuse a graph without within-cell edges (``within``, from :func:`_within_cell`);
    warn when most transcripts have no neighbour."""
    src, dst = graph.edge_index.numpy()
    has_neighbour = np.zeros(graph.num_nodes, dtype=bool)
    has_neighbour[dst[within & (src != dst)]] = True
    isolated = 1.0 - has_neighbour[members].mean()
    if isolated == 1.0:
        pos = graph.pos.numpy()[members]
        nearest = np.median(cKDTree(pos).query(pos, k=2)[0][:, 1])
        raise ValueError(
            f"the transcript graph has no edge within a cell: radius={radius:g} µm is too small "
            f"(median nearest-neighbour distance of the transcripts in cells: {nearest:.3g} µm)"
        )
    if isolated > ISOLATED_WARNING:
        warn_user(
            f"{isolated:.0%} of the transcripts in cells have no neighbour within radius={radius:g} µm "
            "in their cell: their neighbourhood is their own gene only; consider a larger radius"
        )


def _check_output_names(
    sdata: SpatialData, key_added: str, shapes_key: str, table_key: str, cell_key: str | None
) -> None:
    """Refuse output names that would overwrite the data or that SpatialData would not
    store: checked before anything is written, as a refused name fails only at its write."""
    check_output_key("key_added", key_added, SCHEMA_COLUMNS, "transcript column")
    check_uns_key("key_added", key_added, UNS_SUFFIXES)
    # The cell outlines read are the data too, under whatever name (one sample's of several).
    reserved = SCHEMA_SHAPES if cell_key is None else SCHEMA_SHAPES | {cell_key}
    check_output_key("shapes_key", shapes_key, reserved, "element")
    check_element_name(sdata, shapes_key, "shapes_key")
    if isinstance(table_key, str) and table_key.lower() == shapes_key.lower():
        raise ValueError(
            f"table_key={table_key!r} and shapes_key={shapes_key!r} name one element: SpatialData names "
            "must be unique across element types, ignoring case; choose another name for one of them"
        )


def _features(
    graph: Data,
    within: np.ndarray,
    members: np.ndarray,
    representation: Representation,
    model,
    encoder_graph: Data,
    bandwidth: float,
    n_components: int,
    n_passes: int,
    max_edges: int,
    seed: int,
) -> np.ndarray:
    gene = graph.gene.numpy().astype(np.int64)
    cell = graph.cell.numpy().astype(np.int64)
    n_genes = len(graph.gene_names)
    composition = cell_composition(gene[members], cell[members], n_genes)
    blocks = []
    edges, edge_dist = graph.edge_index.numpy(), graph.edge_dist.numpy()
    # Renumbered to the members only where some transcript or edge is left out: the
    # copies cost seconds at 10^7 edges, and a within-cell graph of cells alone needs none.
    if members.size < gene.size or not within.all():
        local = np.full(gene.size, -1, dtype=np.int64)
        local[members] = np.arange(members.size)
        edges, edge_dist = local[edges[:, within]], edge_dist[within]
    if representation in ("composition", "both"):
        counts = neighbourhood_counts(edges, edge_dist, gene[members], n_genes, bandwidth)
        blocks.append(
            standardised_block(
                composition_components(counts, cell[members], composition, n_components, seed)
            )
        )
    if representation in ("embedding", "both"):
        embedding, predict = _encoder_context(
            model, encoder_graph, members, graph.gene_names, n_passes, max_edges, seed
        )
        # An encoder on its own (smaller) graph predicts at its own scale: average
        # its predictions over the domain neighbourhood, as the counts are.
        weights = (
            None if encoder_graph is graph
            else neighbourhood_weights(edges, edge_dist, members.size, bandwidth)
        )
        blocks.append(
            standardised_block(
                predicted_composition_components(
                    embedding, predict, cell[members], composition, n_components, weights
                )
            )
        )
    return np.hstack(blocks)


def domains(
    sdata: SpatialData,
    model=None,
    *,
    radius: float | None = None,
    graph: Data | None = None,
    encoder_graph: Data | None = None,
    n_domains: int | None = None,
    k_range: tuple[int, int] = (2, 8),
    representation: Representation | None = None,
    method: Literal["kmeans", "gmm"] = "kmeans",
    bandwidth: float | None = None,
    n_components: int = 10,
    n_passes: int = 7,
    sample_size: int = 5000,
    hull_ratio: float = 0.3,
    min_transcripts: int = 3,
    max_edges: int = MAX_EDGES,
    seed: int = 0,
    points_key: str = S.POINTS_KEY,
    cell_key: str | None = S.CELL_SHAPES_KEY,
    table_key: str = TABLE_KEY,
    key_added: str = DOMAIN_KEY,
    shapes_key: str | None = None,
    inplace: bool = True,
) -> DomainResult:
    r"""Find subcellular domains shared by all cells.

    Every transcript in a cell gets a feature vector from its within-cell radius
    neighbourhood (:mod:`stgraph.domains._features`):

    - ``representation="composition"``: the distance-weighted gene composition of
      its neighbourhood compared with its cell's overall composition (Pearson
      residuals), reduced to ``n_components`` principal components;
    - ``"embedding"``: the encoder context, i.e. the gene distribution that the
      pretrained masked gene model predicts at each transcript with its own gene
      hidden (the transcript's embedding with its token masked, through the
      masked-gene head), compared with its cell's mean prediction and reduced to
      ``n_components`` principal components (a transcript's unmasked embedding is
      dominated by its gene token and would cluster by gene);
    - ``"both"``: the two blocks side by side, each scaled to equal weight.

    One clustering over the transcripts of all cells (so a label is the same domain
    in every cell) gives the domains: k-means, or a Gaussian mixture, with
    ``n_domains`` clusters or ``k`` chosen in ``k_range`` by the silhouette on a
    sample of ``sample_size`` transcripts (k-means) or by BIC (mixture); see
    :func:`stgraph.domains.cluster_domains`. Labels are ordered by decreasing size.

    Control probes (``is_control``) count as genes here: they are part of the
    neighbourhood compositions, get a domain label and rows of the enrichment
    table; read the data with ``drop_controls=True`` to leave them out.

    Parameters
    ----------
    sdata
        Data in the stgraph schema.
    model
        Pretrained masked gene model, as returned by :func:`stgraph.tl.pretrain`
        (its masked-gene head is needed); required for
        ``representation="embedding"`` or ``"both"``. Genes are matched by name:
        genes of its vocabulary missing from ``sdata`` are fine (its predictions of
        them are left out), a gene of ``sdata`` it does not know is refused.
    radius
        Graph radius in µm (edges within cells), in 3D when the points have ``z``.
    graph
        Transcript graph to use instead, as built by
        :func:`stgraph.graph.transcript_graph` from ``sdata`` (its ``edge_dist`` is
        used); ``radius``, if given too, must equal its radius.
    encoder_graph
        Graph the encoder runs on, e.g. of the (smaller) radius it was pretrained
        with (same transcripts in the same order as ``graph``); default ``graph``.
        When given, the encoder's predictions are averaged over the Gaussian
        neighbourhood of ``graph`` (``bandwidth``) before clustering.
    n_domains
        Number of domains; None chooses it in ``k_range``.
    k_range
        Smallest and largest ``k`` tried when ``n_domains`` is None: two integers,
        ``2 <= low <= high`` (checked, and recorded, even when ``n_domains`` is given).
    representation
        Features clustered, see above; default ``"embedding"`` when ``model`` is
        given, ``"composition"`` otherwise.
    method
        ``"kmeans"`` or ``"gmm"``.
    bandwidth
        Gaussian distance weight ``sigma`` of the composition (and of the averaging
        of the encoder context on ``encoder_graph``) in µm, a positive number;
        default half the radius.
    n_components
        Principal components kept of the composition residuals and of the
        encoder context (a positive integer).
    n_passes
        Encoder passes of the encoder context (an integer >= 2): each masks a
        random ``1 / n_passes`` of the transcripts
        (:func:`stgraph.coloc._encode.masked_embeddings`).
    sample_size
        Transcripts on which the silhouette is computed (a positive integer); at
        least ``k_range[1] + 1`` when k-means chooses ``k``.
    hull_ratio, min_transcripts
        Outline of each (cell, domain): concave hull in the plane (``z`` is not used;
        ``hull_ratio`` in [0, 1]) of at
        least ``min_transcripts`` (a positive integer) transcripts, clipped to the
        cell's outline in ``cell_key``, see :func:`stgraph.domains.domain_polygons`.
    max_edges
        Edges per encoder pass, which bounds its memory (as in
        :func:`stgraph.tl.colocalization`).
    seed
        Non-negative seed of the SVD, the masking, the clustering and the silhouette
        sample. The same seed gives identical labels for the same rows on the CPU
        (with one or two torch and numba threads alike on the MERFISH sample), and
        so does another order of the gene or cell categories. The clustering's
        initialisation, the silhouette sample and the encoder's masking passes
        follow the transcripts' order, so the same rows in another order may get
        other labels, as with another seed: 4 of the 66,419 transcripts of the
        MERFISH sample without duplicates (3 domains); in a simulation without
        planted domains, 369 of 4,620 with 3 domains of an encoder's context and
        3,086 where 8 domains of the composition were chosen.
    points_key, cell_key, table_key
        Element names: the points, the cell outlines of these points (indexed by
        cell id) that clip the domain outlines, and the table (created by
        :func:`stgraph.io.get_table` if absent, annotated to the outlines
        ``cell_key``). ``cell_key=None``, or the default ``"cell_boundaries"``
        missing from the data, clips nothing (the outlines are the bare hulls);
        another name must exist: with several samples, name the outlines of
        ``points_key``'s (``cell_boundaries`` may be another sample's).
    key_added
        Points column of the labels (row ``point_index[i]`` gets the label of node
        ``i``; categorical ``0 .. k - 1``); not a schema column. A zarr store
        (``sdata.write``, :func:`spatialdata.read_zarr`) gives the same labels back,
        but their categories in order of first appearance (pyarrow writes integer
        categories as plain integers): compare labels by value, not by
        ``.cat.codes``; :func:`stgraph.pl.domains` colours them by value. The table's ``uns[key_added + '_enrichment']``
        gets the enrichment and ``uns[key_added + '_params']`` the settings and
        the criterion of each ``k`` (:attr:`DomainResult.params`).
    shapes_key
        Shapes element of the outlines (columns ``cell_id``, ``domain``,
        ``n_transcripts``), with the coordinate transformations of the points;
        default ``key_added + "_boundaries"``, with the prefix ``points_key + "_"``
        for points other than ``transcripts`` (so runs under different
        ``key_added``, or on the points of different samples, keep their own
        outlines; :func:`stgraph.pl.domains` draws the same default); not ``cell_boundaries``,
        ``nucleus_boundaries`` nor ``cell_key``. When no (cell, domain) gets an
        outline the element is absent (an earlier result under this name is removed).
    inplace
        Write the outputs into ``sdata``; False leaves it untouched.

    Returns
    -------
    :class:`DomainResult`.

    Raises
    ------
    KeyError
        If ``points_key`` is not a points element of ``sdata``.
    ValueError
        If an argument is invalid, ``graph`` was built from other transcripts than
        those of ``sdata`` or with another ``radius``, an output name would
        overwrite the data (a schema column, ``cell_boundaries``,
        ``nucleus_boundaries``, ``cell_key``, ``spatialdata_attrs``), ``cell_key`` is
        neither None, ``"cell_boundaries"`` nor a shapes element (naming those there
        are), ``key_added`` writes a table
        ``uns`` key SpatialData cannot save (an invalid name, or one differing only in
        case from a key there), ``shapes_key`` or
        ``table_key`` is not a valid SpatialData element name or names another
        element (of another kind, or one whose name differs only in case; the two
        must differ), no cell holds two transcripts, the transcripts in cells are
        of one gene or too few for ``n_domains`` (or ``k_range``), no two transcripts of a cell are within ``radius``, the cell
        outlines ``cell_key`` are neither polygons nor circles of positive
        radius (circles are read as discs) or have another transformation than the
        points (their coordinates would not align), the data hold genes unknown to
        ``model``, or (with
        ``inplace``) an existing table misses cells or genes of the data
        (:func:`stgraph.io.check_table`). Nothing is written then.
    TypeError
        If ``sdata`` is not a SpatialData, ``graph`` or ``encoder_graph`` is not a
        torch_geometric ``Data``, ``model`` has no masked-gene head, an
        output name is not a string, ``cell_key`` is neither a string nor None, or
        ``inplace`` is not a bool
        (``inplace="False"`` would be true).

    Warns
    -----
    UserWarning
        When more than :data:`ISOLATED_WARNING` of the transcripts in cells have no
        neighbour in their cell within ``radius``.
    UserWarning
        With ``representation="embedding"`` or ``"both"``, when ``model`` was
        pretrained at another radius than the graph it runs on (``encoder_graph``,
        default ``graph``), where both radii are known.
    """
    check_spatialdata(sdata)
    inplace = check_bool("inplace", inplace)
    if representation is None:
        representation = "composition" if model is None else "embedding"
    if representation not in ("composition", "embedding", "both"):
        raise ValueError(
            f"representation must be 'composition', 'embedding' or 'both', got {representation!r}"
        )
    if representation != "composition":
        if model is None:
            raise ValueError(f"representation={representation!r} needs a pretrained model")
        _masked_gene_model(model)
    check_int("n_components", n_components)
    check_int("n_passes", n_passes, minimum=2)
    if bandwidth is not None:
        bandwidth = check_real("bandwidth", bandwidth)
    check_hull_arguments(hull_ratio, min_transcripts, "hull_ratio")
    k_range = check_clustering_arguments(n_domains, k_range, method, sample_size)
    check_seed(seed)
    if shapes_key is None:
        shapes_key = default_shapes_key(key_added, points_key)
    # Read before the work, so that outlines missing, of the wrong kind or not aligned
    # with the points are refused up front.
    outlines = optional_shapes(sdata, cell_key, S.CELL_SHAPES_KEY, "cell_key", points_key)
    _check_output_names(sdata, key_added, shapes_key, table_key, cell_key)
    cell_boundaries = None if outlines is None else outline_geometry(outlines, cell_key)
    graph = graph_for(sdata, radius, graph, "cell", points_key, _GRAPH_FIELDS)
    if inplace:
        check_table(sdata, table_key, points_key)  # before anything is written
        if table_key in sdata.tables:
            check_uns_key("key_added", key_added, UNS_SUFFIXES, sdata.tables[table_key].uns)
    radius = float(graph.get("radius") or radius or np.nan)
    bandwidth = radius / 2 if bandwidth is None else bandwidth

    cell = graph.cell.numpy().astype(np.int64)
    members = np.flatnonzero(cell >= 0)
    _check_members(graph, members)
    _check_enough_members(graph, members, n_domains, k_range)
    within = _within_cell(graph)
    _check_neighbourhoods(graph, within, members, radius)
    if encoder_graph is None:
        encoder_graph = graph
    else:
        checked_graph(encoder_graph, None, ("gene", "edge_index", "gene_names"), name="encoder_graph")
        if encoder_graph.num_nodes != graph.num_nodes or not np.array_equal(
            np.asarray(encoder_graph.gene_names)[encoder_graph.gene.numpy()],
            np.asarray(graph.gene_names)[graph.gene.numpy()],
        ):
            raise ValueError("encoder_graph must hold the transcripts of graph, in the same order")
    if representation != "composition":
        if encoder_graph is graph:
            warn_other_radius(
                model, graph, alternative=" (or pass one as encoder_graph: the domains keep this graph's radius)"
            )
        else:
            warn_other_radius(model, encoder_graph, "encoder_graph")
    features = _features(
        graph, within, members, representation, model, encoder_graph, bandwidth, n_components, n_passes,
        max_edges, seed,
    )
    clustering = cluster_domains(
        features, n_domains, k_range=k_range, method=method, sample_size=sample_size, seed=seed
    )
    codes = np.full(cell.size, -1, dtype=np.int64)
    codes[members] = clustering.labels
    labels = pd.Categorical.from_codes(codes, categories=np.arange(clustering.n_domains))

    gene = graph.gene.numpy().astype(np.int64)
    enrichment = domain_enrichment(clustering.labels, gene[members], graph.gene_names)
    cell_names = pd.Index(graph.cell_names)
    cell_id = pd.Categorical.from_codes(cell, categories=cell_names)
    polygons = domain_polygons(
        graph.pos.numpy()[:, :2],
        cell_id,
        codes,
        cell_boundaries=cell_boundaries,
        ratio=hull_ratio,
        min_transcripts=min_transcripts,
    )
    params = {
        "n_domains": int(clustering.n_domains),
        "criterion_k": np.array(list(clustering.criterion), dtype=np.int64),
        "criterion_value": np.array(list(clustering.criterion.values()), dtype=np.float64),
        "representation": representation,
        "method": method,
        "radius": radius,
        "bandwidth": bandwidth,
        "n_components": int(n_components),
        "n_passes": int(n_passes),
        "seed": int(seed),
        "k_range": list(k_range),
        "sample_size": int(sample_size),
        "hull_ratio": float(hull_ratio),
        "min_transcripts": int(min_transcripts),
        "cell_key": None if outlines is None else cell_key,
        "shapes_key": shapes_key,
    }
    result = DomainResult(labels, enrichment, polygons, clustering, params)
    if inplace:
        rows = graph.get("point_index")
        # Node i is row point_index[i] of the points (graphs in spatial order permute them).
        in_rows = labels if rows is None else labels[np.argsort(rows.numpy())]
        set_points_columns(sdata, points_key, sdata.points[points_key].compute().copy(), {key_added: in_rows})
        uns = ensure_table(sdata, table_key, points_key, cell_key).uns
        uns[f"{key_added}_enrichment"] = enrichment
        uns[f"{key_added}_params"] = params
        if len(polygons):
            # In the points' coordinates: their transformations align the outlines with them.
            transformations = get_transformation(sdata.points[points_key], get_all=True)
            sdata.shapes[shapes_key] = ShapesModel.parse(polygons, transformations=transformations)
        elif shapes_key in sdata.shapes:  # an earlier run's outlines would pass for this one's
            del sdata.shapes[shapes_key]
    return result

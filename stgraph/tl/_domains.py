"""Subcellular domains: cluster transcripts by their neighbourhood, in all cells at once."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
from spatialdata import SpatialData
from spatialdata.models import PointsModel, ShapesModel
from spatialdata.transformations import get_transformation
from torch_geometric.data import Data

from ..coloc._encode import MAX_EDGES, encoder_outputs
from ..domains import (
    DomainClustering,
    cell_composition,
    cluster_domains,
    composition_components,
    context_embedding,
    domain_enrichment,
    domain_polygons,
    neighbourhood_counts,
    standardised_block,
)
from ..io import TABLE_KEY, get_table
from ..io import _schema as S
from ._colocalization import _graph_for

#: Default names of the outputs.
DOMAIN_KEY = "domain"
DOMAIN_SHAPES_KEY = "domain_boundaries"

Representation = Literal["composition", "embedding", "both"]


@dataclass
class DomainResult:
    """Outputs of :func:`domains`.

    Attributes
    ----------
    labels
        Domain of every transcript (categorical ``0 .. k - 1``, by decreasing size;
        NaN for transcripts outside cells).
    enrichment
        Gene enrichment per domain (:func:`stgraph.domains.domain_enrichment`).
    polygons
        Outline of each domain in each cell (:func:`stgraph.domains.domain_polygons`).
    clustering
        The clustering, with the criterion of each ``k`` tried.
    params
        Settings.
    """

    labels: pd.Categorical
    enrichment: pd.DataFrame
    polygons: gpd.GeoDataFrame
    clustering: DomainClustering
    params: dict = field(default_factory=dict)


def _features(
    graph: Data,
    members: np.ndarray,
    representation: Representation,
    model,
    embedding: np.ndarray | None,
    bandwidth: float,
    n_components: int,
    max_edges: int,
    seed: int,
) -> np.ndarray:
    gene = graph.gene.numpy().astype(np.int64)
    cell = graph.cell.numpy().astype(np.int64)
    src, dst = graph.edge_index.numpy()
    within = (cell[src] == cell[dst]) & (cell[dst] >= 0)
    local = np.full(gene.size, -1, dtype=np.int64)
    local[members] = np.arange(members.size)
    edges = np.stack([local[src[within]], local[dst[within]]])
    edge_dist = graph.edge_dist.numpy()[within]
    blocks = []
    if representation in ("composition", "both"):
        counts = neighbourhood_counts(edges, edge_dist, gene[members], len(graph.gene_names), bandwidth)
        composition = cell_composition(gene[members], cell[members], len(graph.gene_names))
        blocks.append(
            standardised_block(
                composition_components(counts, cell[members], composition, n_components, seed)
            )
        )
    if representation in ("embedding", "both"):
        if embedding is None:
            embedding = encoder_outputs(model, graph, max_edges=max_edges).embedding
        blocks.append(
            standardised_block(
                context_embedding(
                    embedding[members], edges, edge_dist, cell[members], bandwidth, n_components
                )
            )
        )
    return np.hstack(blocks)


def _with_points_column(sdata: SpatialData, points_key: str, column: str, values) -> None:
    points = sdata.points[points_key]
    frame = points.compute().copy()
    frame[column] = values
    sdata.points[points_key] = PointsModel.parse(
        frame,
        feature_key=points.attrs.get("spatialdata_attrs", {}).get("feature_key"),
        instance_key=points.attrs.get("spatialdata_attrs", {}).get("instance_key"),
        transformations=get_transformation(points, get_all=True),
    )


def domains(
    sdata: SpatialData,
    model=None,
    *,
    radius: float | None = None,
    graph: Data | None = None,
    embedding: np.ndarray | None = None,
    n_domains: int | None = None,
    k_range: tuple[int, int] = (2, 8),
    representation: Representation = "composition",
    method: Literal["kmeans", "gmm"] = "kmeans",
    bandwidth: float | None = None,
    n_components: int = 10,
    sample_size: int = 5000,
    hull_ratio: float = 0.3,
    min_transcripts: int = 3,
    max_edges: int = MAX_EDGES,
    seed: int = 0,
    points_key: str = S.POINTS_KEY,
    table_key: str = TABLE_KEY,
    key_added: str = DOMAIN_KEY,
    shapes_key: str = DOMAIN_SHAPES_KEY,
    inplace: bool = True,
) -> DomainResult:
    r"""Find subcellular domains shared by all cells.

    Every transcript in a cell gets a feature vector from its within-cell radius
    neighbourhood (:mod:`stgraph.domains._features`):

    - ``representation="composition"``: the distance-weighted gene composition of
      its neighbourhood compared with its cell's overall composition (Pearson
      residuals), reduced to ``n_components`` principal components;
    - ``"embedding"``: the context embedding, i.e. the pretrained encoder's
      embeddings averaged over the same neighbourhood, centred per cell and reduced
      to ``n_components`` principal components (a transcript's own embedding is
      dominated by its gene token and would cluster by gene);
    - ``"both"``: the two blocks side by side, each scaled to equal weight.

    One clustering over the transcripts of all cells (so a label is the same domain
    in every cell) gives the domains: k-means, or a Gaussian mixture, with
    ``n_domains`` clusters or ``k`` chosen in ``k_range`` by the silhouette on a
    sample of ``sample_size`` transcripts (k-means) or by BIC (mixture); see
    :func:`stgraph.domains.cluster_domains`. Labels are ordered by decreasing size.

    Parameters
    ----------
    sdata
        Data in the stgraph schema.
    model
        Pretrained encoder (as for :func:`stgraph.tl.colocalization`); needed for
        ``representation="embedding"`` or ``"both"``.
    radius
        Graph radius in µm (edges within cells).
    graph
        Transcript graph to use instead, as built by
        :func:`stgraph.graph.transcript_graph` (its ``edge_dist`` is used).
    embedding
        Precomputed ``(N, d)`` transcript embeddings (rows in the order of the
        points) to use instead of running ``model``, e.g. from an encoder run on a
        graph of another radius.
    n_domains
        Number of domains; None chooses it in ``k_range``.
    k_range
        Smallest and largest ``k`` tried when ``n_domains`` is None.
    representation
        Features clustered, see above.
    method
        ``"kmeans"`` or ``"gmm"``.
    bandwidth
        Gaussian distance weight ``sigma`` of the composition and the context
        embedding in µm; default half the radius.
    n_components
        Principal components kept of the composition residuals and of the
        context embedding.
    sample_size
        Transcripts on which the silhouette is computed.
    hull_ratio, min_transcripts
        Outline of each (cell, domain): concave hull of at least ``min_transcripts``
        transcripts, see :func:`stgraph.domains.domain_polygons`.
    max_edges
        Edges per encoder pass.
    seed
        Seed of the SVD, the clustering and the silhouette sample.
    points_key, table_key
        Points element and table (created by :func:`stgraph.io.get_table` if absent).
    key_added
        Points column of the labels; the table's ``uns[key_added + '_enrichment']``
        gets the enrichment and ``uns[key_added + '_params']`` the settings and
        the criterion of each ``k``.
    shapes_key
        Shapes element of the outlines (columns ``cell_id``, ``domain``,
        ``n_transcripts``).
    inplace
        Write the outputs into ``sdata``; False leaves it untouched.

    Returns
    -------
    :class:`DomainResult`.
    """
    if not isinstance(sdata, SpatialData):
        raise TypeError(f"expected a SpatialData, got {type(sdata).__name__}")
    if representation not in ("composition", "embedding", "both"):
        raise ValueError(
            f"representation must be 'composition', 'embedding' or 'both', got {representation!r}"
        )
    if representation != "composition" and model is None and embedding is None:
        raise ValueError(f"representation={representation!r} needs a pretrained model or embedding=")
    graph = _graph_for(sdata, radius, graph, "cell", points_key)
    radius = float(graph.get("radius") or radius or np.nan)
    bandwidth = radius / 2 if bandwidth is None else float(bandwidth)
    if graph.get("edge_dist") is None:
        raise ValueError("the transcript graph lacks edge_dist")

    cell = graph.cell.numpy().astype(np.int64)
    members = np.flatnonzero(cell >= 0)
    if members.size < 2:
        raise ValueError("domains need at least two transcripts assigned to cells")
    if embedding is not None:
        embedding = np.asarray(embedding, dtype=np.float64)
        if embedding.ndim != 2 or embedding.shape[0] != cell.size:
            raise ValueError(
                f"embedding must have one row per transcript ({cell.size}), got shape {embedding.shape}"
            )
    features = _features(
        graph, members, representation, model, embedding, bandwidth, n_components, max_edges, seed
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
    outlines = sdata.shapes.get(S.CELL_SHAPES_KEY)
    polygons = domain_polygons(
        graph.pos.numpy()[:, :2],
        cell_id,
        codes,
        cell_boundaries=outlines.geometry if outlines is not None else None,
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
        "seed": int(seed),
    }
    result = DomainResult(labels, enrichment, polygons, clustering, params)
    if inplace:
        _with_points_column(sdata, points_key, key_added, labels)
        uns = get_table(sdata, table_key, points_key).uns
        uns[f"{key_added}_enrichment"] = enrichment
        uns[f"{key_added}_params"] = params
        if len(polygons):
            sdata.shapes[shapes_key] = ShapesModel.parse(polygons)
    return result

"""A transcript graph as an AnnData of molecules, in the layout of squidpy's spatial graphs."""
from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch_geometric.data import Data

from .._validation import check_codes
from ._fields import check_graph_fields

# The keys squidpy.gr.spatial_neighbors writes by default (key_added="spatial"), which
# its graph functions (nhood_enrichment, centrality_scores, ...) read by default.
CONNECTIVITIES_KEY = "spatial_connectivities"
DISTANCES_KEY = "spatial_distances"
NEIGHBORS_KEY = "spatial_neighbors"

_FIELDS = (
    "gene", "pos", "edge_index", "edge_dist", "cell", "is_control", "point_index", "gene_names", "cell_names",
    "radius",
)


def to_anndata(graph: Data) -> ad.AnnData:
    """The molecules of a transcript graph as an AnnData that squidpy's graph functions read.

    One observation per node, in node order, with the graph in ``obsp`` as
    :func:`squidpy.gr.spatial_neighbors` writes it, so that e.g.
    ``squidpy.gr.nhood_enrichment(adata, cluster_key="gene")``,
    ``squidpy.gr.interaction_matrix``, ``squidpy.gr.centrality_scores`` or
    ``squidpy.gr.spatial_autocorr`` run on the molecules directly.

    Parameters
    ----------
    graph
        A transcript graph (:func:`stgraph.graph.transcript_graph`); it is not modified
        and shares no memory with the result.

    Returns
    -------
    :class:`anndata.AnnData` with ``N`` observations (nodes) and one variable per gene:

    - ``X``: one-hot genes, CSR float32 (``X[i, gene[i]] = 1``), ``var_names`` the
      ``gene_names``;
    - ``obs``: ``gene`` (categorical, categories ``gene_names`` in order), ``cell``
      (categorical of ``cell_names``, NaN for unassigned molecules), ``is_control``,
      ``in_nucleus`` where the graph has it, and ``point_index`` (row in the points);
      ``obs_names`` are the ``point_index`` as strings;
    - ``obsm['spatial']``: ``pos`` as float64, ``[N, 2]`` or ``[N, 3]`` (squidpy's
      radius and k-NN graphs take 3D coordinates too);
    - ``obsp['spatial_connectivities']``: CSR float32, 1 at ``[i, j]`` for every edge
      ``j → i`` (row ``i`` holds the neighbours of ``i``, squidpy's orientation; the
      radius graph is symmetric, and with ``max_num_neighbors`` row ``i`` lists the
      nearest neighbours kept for ``i``);
    - ``obsp['spatial_distances']``: CSR float64 with the same entries, the edge
      lengths ``edge_dist`` (exact lengths rounded to float32), zeros included for
      molecules at the same position, which squidpy's own matrix leaves out;
    - ``uns['spatial_neighbors']``: the keys and parameters squidpy records
      (``coord_type='generic'``, the graph's ``radius``, no transform). A graph built
      ``within="cell"`` or with ``max_num_neighbors`` keeps fewer edges than squidpy's
      radius graph would.

    Genes of ``gene_names`` without a molecule (a crop whose gene column keeps every
    category) keep their column and category; squidpy 1.8's ``centrality_scores``
    then divides by zero: drop them from the clusters first,
    ``adata.obs['gene'] = adata.obs['gene'].cat.remove_unused_categories()``.

    ``X`` holds one nonzero per node, each ``obsp`` matrix one per edge: the two take
    about 20 bytes per edge (float32 and float64 values, 32-bit indices), as much as
    the graph's ``edge_index`` and ``edge_dist``, and building them peaks at about 56
    (0.38 GB for the 6.9 million edges of the MERFISH sample at 1 µm).

    Raises
    ------
    TypeError
        If ``graph`` is not a :class:`torch_geometric.data.Data`, or its ``gene`` or
        ``cell`` does not hold integer codes.
    ValueError
        If a field listed above (``in_nucleus`` aside) is missing, or ``gene`` or
        ``cell`` is not one-dimensional or holds a code outside ``gene_names`` or
        ``cell_names`` (−1 allowed for ``cell``).
    """
    check_graph_fields(graph, _FIELDS)
    gene_names = list(graph.gene_names)
    gene = check_codes("graph.gene", _numpy(graph.gene), len(gene_names))
    cell = check_codes("graph.cell", _numpy(graph.cell), len(graph.cell_names), missing=True)
    point_index = _numpy(graph.point_index)
    n = gene.size
    obs = {
        "gene": pd.Categorical.from_codes(gene, categories=gene_names),
        "cell": pd.Categorical.from_codes(cell, categories=list(graph.cell_names)),
        "is_control": _numpy(graph.is_control),
    }
    if graph.get("in_nucleus") is not None:
        obs["in_nucleus"] = _numpy(graph.in_nucleus)
    obs["point_index"] = point_index
    source, target = _numpy(graph.edge_index)
    # Row i, column j for the edge j -> i: row i holds the neighbours of node i.
    edges = (target, source)
    adata = ad.AnnData(
        X=sp.csr_matrix((np.ones(n, np.float32), gene, np.arange(n + 1)), shape=(n, len(gene_names))),
        obs=pd.DataFrame(obs, index=pd.Index(point_index.astype(str))),
        var=pd.DataFrame(index=pd.Index(gene_names)),
        obsm={"spatial": _numpy(graph.pos).astype(np.float64)},
        obsp={
            CONNECTIVITIES_KEY: sp.csr_matrix((np.ones(source.size, np.float32), edges), shape=(n, n)),
            DISTANCES_KEY: sp.csr_matrix((_numpy(graph.edge_dist).astype(np.float64), edges), shape=(n, n)),
        },
    )
    adata.uns[NEIGHBORS_KEY] = {
        "connectivities_key": CONNECTIVITIES_KEY,
        "distances_key": DISTANCES_KEY,
        "params": {"coord_type": "generic", "radius": float(graph.radius), "transform": None},
    }
    return adata


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    """A copy of ``tensor`` as NumPy: the AnnData must not write into the graph."""
    return tensor.detach().cpu().numpy().copy()

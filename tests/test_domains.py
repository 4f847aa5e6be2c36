"""Subcellular domains: features, clustering, enrichment, outlines, tl.domains and its plot."""
from __future__ import annotations

import copy
import re
import tracemalloc
import warnings

import matplotlib

matplotlib.use("Agg")

import geopandas as gpd  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import shapely  # noqa: E402
import spatialdata  # noqa: E402
import torch  # noqa: E402
from scipy import sparse, stats  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

import stgraph  # noqa: E402
from stgraph.domains._features import _whole_cell_chunks  # noqa: E402
from stgraph.domains import (  # noqa: E402
    ENRICHMENT_COLUMNS,
    cell_composition,
    cluster_domains,
    composition_components,
    domain_enrichment,
    domain_polygons,
    neighbourhood_counts,
    neighbourhood_weights,
    predicted_composition_components,
)
from stgraph.coloc._encode import encoder_outputs, masked_embeddings  # noqa: E402
from stgraph.nn import TranscriptEncoder  # noqa: E402
from stgraph.pl._domains import domains as plot_domains  # noqa: E402
from stgraph.tl._domains import default_shapes_key, domains  # noqa: E402
from tests.test_pretrain import other_radius_message  # noqa: E402

RADIUS = 3.0


def blobs(sizes, seed=0, spread=0.3):
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [6, 0], [0, 6], [6, 6]], dtype=float)[: len(sizes)]
    points = np.concatenate([c + rng.normal(0, spread, (n, 2)) for c, n in zip(centres, sizes)])
    return points, np.repeat(np.arange(len(sizes)), sizes)


def test_neighbourhood_counts_by_hand():
    # 0 (gene 0) -- 1 (gene 1) at distance 1, and 0 -- 2 (gene 1) at distance 2; sigma = 1
    edges = np.array([[1, 2, 0, 0], [0, 0, 1, 2]])
    dist = np.array([1.0, 2.0, 1.0, 2.0])
    counts = neighbourhood_counts(edges, dist, np.array([0, 1, 1]), 2, 1.0).toarray()
    np.testing.assert_allclose(counts[0], [1.0, np.exp(-0.5) + np.exp(-2.0)])
    np.testing.assert_allclose(counts[1], [np.exp(-0.5), 1.0])
    with pytest.raises(ValueError):
        neighbourhood_counts(edges, dist, np.array([0, 1, 1]), 2, 0.0)
    # In general: the neighbourhood weights summed by gene (self-loops and repeated
    # edges included in the input).
    rng = np.random.default_rng(3)
    edges, dist, gene = rng.integers(0, 40, (2, 500)), rng.uniform(0, 3, 500), rng.integers(0, 6, 40)
    one_hot = np.eye(6)[gene]
    np.testing.assert_allclose(
        neighbourhood_counts(edges, dist, gene, 6, 1.5).toarray(),
        neighbourhood_weights(edges, dist, 40, 1.5).toarray() @ one_hot, rtol=1e-12,
    )


def test_composition_components_equal_dense_pca():
    rng = np.random.default_rng(0)
    n, n_genes = 400, 9
    gene, cell = rng.integers(0, n_genes, n), rng.integers(0, 3, n)
    own = sparse.csr_matrix((np.ones(n), (np.arange(n), gene)), shape=(n, n_genes))
    counts = sparse.random(n, n_genes, density=0.5, random_state=1, format="csr") * 4 + own
    composition = cell_composition(gene, cell, n_genes)
    scores = composition_components(counts, cell, composition, 3)
    dense = counts.toarray()
    expected = dense.sum(axis=1, keepdims=True) * composition.toarray()[cell]
    residual = (dense - expected) / np.sqrt(expected)
    residual -= residual.mean(axis=0)
    u, s, _ = np.linalg.svd(residual, full_matrices=False)
    np.testing.assert_allclose(np.abs(scores), np.abs(u[:, :3] * s[:3]), atol=1e-8)


def test_cell_composition_is_sparse_and_matches_the_dense_shares():
    # A 5,000-gene panel: the shares are held as the sparse counts, never as the dense
    # (cells, genes) float64 array (20,000 x 5,000 would be 800 MB a copy).
    rng = np.random.default_rng(0)
    n, n_cells, n_genes = 2000, 40, 5000
    gene, cell = rng.integers(0, n_genes, n), rng.integers(0, n_cells, n)
    tracemalloc.start()
    composition = cell_composition(gene, cell, n_genes)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 0.1 * n_cells * n_genes * 8  # the dense array: 1.6 MB; here ~0.1 MB
    assert composition.shape == (n_cells, n_genes)
    assert composition.counts.nnz <= n and composition.counts.sum() == n
    counts = np.zeros((n_cells, n_genes))
    np.add.at(counts, (cell, gene), 1)
    dense = (counts + 0.5) / (counts.sum(axis=1, keepdims=True) + 0.5 * n_genes)
    np.testing.assert_allclose(composition.toarray(), dense, rtol=1e-14)
    np.testing.assert_allclose(dense.sum(axis=1), 1.0)
    v, w = rng.normal(size=n_genes), rng.normal(size=n_cells)
    np.testing.assert_allclose(composition.root_share_dot(v), np.sqrt(dense) @ v, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(composition.root_share_t_dot(w), np.sqrt(dense).T @ w, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(composition.root_share_at(cell, gene), np.sqrt(dense[cell, gene]), rtol=1e-14)
    np.testing.assert_allclose(composition.root_share_rows(cell[:7]), np.sqrt(dense[cell[:7]]), rtol=1e-14)


def softmax_head(weights: np.ndarray):
    """A stand-in for the masked-gene head: softmax of a linear map of the embeddings."""

    def predict(block):
        logits = block @ weights
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    return predict


def test_predicted_composition_components_equal_dense_pca():
    rng = np.random.default_rng(0)
    n, d, n_genes = 300, 4, 7
    embedding, cell = rng.normal(size=(n, d)), rng.integers(0, 3, n)
    predict = softmax_head(rng.normal(size=(d, n_genes)))
    composition = cell_composition(rng.integers(0, n_genes, n), cell, n_genes)
    scores = predicted_composition_components(embedding, predict, cell, composition, 3, chunk_size=37)
    p = predict(embedding)
    residual = p.copy()
    for c in range(3):
        residual[cell == c] -= p[cell == c].mean(axis=0)
    residual /= np.sqrt(composition.toarray()[cell])
    u, s, _ = np.linalg.svd(residual, full_matrices=False)
    np.testing.assert_allclose(np.abs(scores), np.abs(u[:, :3] * s[:3]), atol=1e-10)
    assert (scores[np.abs(scores).argmax(axis=0), np.arange(3)] > 0).all()
    # Averaged over neighbourhoods first, chunk by chunk.
    src, dst = rng.integers(0, n, (2, 900))
    keep = (cell[src] == cell[dst]) & (src != dst)
    edges, dist = np.stack([src[keep], dst[keep]]), rng.uniform(0, 3, keep.sum())
    neighbours = neighbourhood_weights(edges, dist, n, 1.5).toarray()
    smoothed = predicted_composition_components(
        embedding, predict, cell, composition, 3, weights=sparse.csr_matrix(neighbours), chunk_size=37
    )
    p = neighbours @ p / neighbours.sum(axis=1, keepdims=True)
    for c in range(3):
        p[cell == c] -= p[cell == c].mean(axis=0)
    u, s, _ = np.linalg.svd(p / np.sqrt(composition.toarray()[cell]), full_matrices=False)
    np.testing.assert_allclose(np.abs(smoothed), np.abs(u[:, :3] * s[:3]), atol=1e-10)
    # One chunk (the default here) computes the predictions once: same scores.
    one_chunk = predicted_composition_components(
        embedding, predict, cell, composition, 3, weights=sparse.csr_matrix(neighbours)
    )
    np.testing.assert_allclose(one_chunk, smoothed, atol=1e-10)


def test_predicted_components_hold_no_dense_cell_means_and_pack_whole_cells():
    rng = np.random.default_rng(1)
    n, d, n_genes, n_cells = 8000, 4, 300, 4000
    embedding, cell = rng.normal(size=(n, d)), rng.integers(0, n_cells, n)
    predict = softmax_head(rng.normal(size=(d, n_genes)))
    composition = cell_composition(rng.integers(0, n_genes, n), cell, n_genes)
    chunks = _whole_cell_chunks(cell, 40)
    assert np.array_equal(np.sort(np.concatenate(chunks)), np.arange(n))  # every row once
    owners = [set(cell[rows]) for rows in chunks]
    assert all(not (a & b) for a, b in zip(owners, owners[1:]))  # a cell is never split
    assert all(len(rows) <= 40 or len(owner) == 1 for rows, owner in zip(chunks, owners))
    assert len(chunks) > 1 and max(len(owner) for owner in owners) > 10  # several cells per chunk
    tracemalloc.start()
    scores = predicted_composition_components(embedding, predict, cell, composition, 3, chunk_size=40)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # The dense (n_cells, n_genes) means alone took 9.6 MB; the gene Gram matrix is 0.7 MB.
    assert peak < 4e6
    p = predict(embedding)
    for c in np.unique(cell):
        p[cell == c] -= p[cell == c].mean(axis=0)
    u, s, _ = np.linalg.svd(p / np.sqrt(composition.toarray()[cell]), full_matrices=False)
    np.testing.assert_allclose(np.abs(scores), np.abs(u[:, :3] * s[:3]), atol=1e-10)


def test_masked_embeddings_do_not_see_the_transcripts_own_gene():
    sdata, _ = stgraph.datasets.simulate(3, 8, seed=0)
    graph = stgraph.graph.transcript_graph(sdata, RADIUS, within="cell")
    torch.manual_seed(0)
    encoder = TranscriptEncoder(8, d_model=16, n_layers=2, heads=2)
    masked = masked_embeddings(encoder, graph, n_passes=3)
    # Another gene for transcript i leaves its masked embedding exactly as it was,
    # while its plain embedding changes; its neighbours' masked embeddings change.
    i = int(graph.edge_index[1, 0])
    changed = graph.clone()
    changed.gene = graph.gene.clone()
    changed.gene[i] = (graph.gene[i] + 1) % 8
    again = masked_embeddings(encoder, changed, n_passes=3)
    np.testing.assert_array_equal(again[i], masked[i])
    assert not np.allclose(again, masked)
    plain = encoder_outputs(encoder, graph).embedding
    assert not np.allclose(encoder_outputs(encoder, changed).embedding[i], plain[i])
    # Every transcript was masked in exactly one pass: its row equals that pass's.
    group = np.random.default_rng(0).integers(0, 3, graph.num_nodes)
    one_pass = encoder_outputs(encoder, graph, masked=group == 1).embedding
    np.testing.assert_array_equal(masked[group == 1], one_pass[group == 1])
    np.testing.assert_array_equal(masked_embeddings(encoder, graph, n_passes=3), masked)
    with pytest.raises(ValueError, match="n_passes"):
        masked_embeddings(encoder, graph, n_passes=1)
    with pytest.raises(ValueError, match="masked"):
        encoder_outputs(encoder, graph, masked=np.ones(3, dtype=bool))


def test_cluster_domains_separates_blobs_and_orders_by_size():
    points, truth = blobs([300, 100, 200])
    given = cluster_domains(points, 3)
    assert adjusted_rand_score(truth, given.labels) == 1.0
    assert np.bincount(given.labels).tolist() == [300, 200, 100]
    chosen = cluster_domains(points, k_range=(2, 6))
    assert chosen.n_domains == 3 and set(chosen.criterion) == {2, 3, 4, 5, 6}
    assert max(chosen.criterion, key=chosen.criterion.get) == 3
    by_bic = cluster_domains(points, k_range=(2, 5), method="gmm")
    assert by_bic.n_domains == 3 and adjusted_rand_score(truth, by_bic.labels) == 1.0
    np.testing.assert_array_equal(cluster_domains(points, 3).labels, given.labels)
    for bad in (dict(n_domains=0), dict(k_range=(1, 3)), dict(method="dbscan"), dict(n_domains=10_000)):
        with pytest.raises(ValueError):
            cluster_domains(points, **bad)
    for bad, name in ((dict(n_domains=True), "n_domains"), (dict(n_domains=2.0), "n_domains"),
                      (dict(sample_size=True), "sample_size"), (dict(seed=1.5), "seed")):
        with pytest.raises(TypeError, match=f"{name} must be an integer, got"):
            cluster_domains(points, **bad)
    with pytest.raises(ValueError, match="^seed must be an integer >= 0, got -1$"):
        cluster_domains(points, 3, seed=-1)
    # scikit-learn's random_state takes 32 bits: a larger seed is refused up front.
    with pytest.raises(ValueError, match=r"^seed must be at most 2\*\*32 - 1 = 4294967295, got 4294967296$"):
        cluster_domains(points, 3, seed=2**32)


def test_cluster_domains_refuses_more_domains_than_distinct_features():
    # 40 transcripts with 3 distinct neighbourhoods: 4 domains would leave one empty,
    # which scikit-learn only warned of; choosing k tries at most 3.
    points = np.repeat(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 5.0]]), [20, 12, 8], axis=0)
    with pytest.raises(ValueError, match=re.escape(
        "cannot make 4 domains out of 40 transcripts whose features take only 3 distinct values "
        "(transcripts with the same neighbourhood fall in one domain): give at most 3"
    )):
        cluster_domains(points, 4)
    for method in ("kmeans", "gmm"):
        chosen = cluster_domains(points, k_range=(2, 8), method=method)
        assert set(chosen.criterion) == {2, 3}
    three = cluster_domains(points, 3)
    assert np.bincount(three.labels).tolist() == [20, 12, 8]
    with pytest.raises(ValueError, match=re.escape(
        "40 transcripts (3 distinct feature values) are too few to choose k in (4, 6)"
    )):
        cluster_domains(points, k_range=(4, 6))


def test_cluster_domains_reaches_the_best_k_means_optimum():
    # Six overlapping blobs of unequal sizes on which four k-means++ restarts from seed 0
    # stop at inertia 1,717.9 while the best of 200 restarts is 1,640.3.
    rng = np.random.default_rng(72)
    sizes = rng.integers(20, 400, 6)
    centres = rng.normal(0, 2.0, (6, 2))
    points = np.vstack([rng.normal(c, 1.0, (n, 2)) for c, n in zip(centres, sizes)])
    labels = cluster_domains(points, 6).labels
    inertia = sum(((points[labels == k] - points[labels == k].mean(axis=0)) ** 2).sum() for k in range(6))
    best = KMeans(6, n_init=200, random_state=0).fit(points).inertia_
    assert best == pytest.approx(1640.2536, abs=1e-3)
    assert inertia == pytest.approx(best, rel=1e-9)


def test_domain_enrichment_by_hand():
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    gene = np.array([0, 0, 1, 1, 1, 1, 2, 2])
    table = domain_enrichment(labels, gene, ["a", "b", "c", "unused"])
    assert list(table.columns) == list(ENRICHMENT_COLUMNS)
    assert "unused" not in set(table["gene"].astype(str))
    row = table[(table["domain"] == 0) & (table["gene"] == "a")].iloc[0]
    assert row["count"] == 2 and row["fraction_of_gene"] == 1.0
    assert row["log2_enrichment"] == pytest.approx(np.log2((2.5 / 3) / (2.5 / 8)))
    assert row["pval"] == pytest.approx(stats.hypergeom.sf(1, 8, 2, 3))
    # ordered by domain then decreasing enrichment (nothing is significant in 8 transcripts)
    assert (table["fdr"] >= 0.05).all()
    assert table.groupby("domain")["log2_enrichment"].apply(lambda v: v.is_monotonic_decreasing).all()


def test_a_domain_is_led_by_a_gene_its_transcripts_show_enriched():
    # Gene 'rare' has one molecule, in domain 0: with half counts it had the largest
    # enrichment there, ahead of 'marker' (150 of its 200 molecules in domain 0).
    labels = np.r_[np.zeros(300, int), np.ones(700, int)]
    gene = np.r_[np.zeros(150, int), np.full(149, 2), [1], np.zeros(50, int), np.full(650, 2)]
    table = domain_enrichment(labels, gene, ["marker", "rare", "other"])
    first = table[table["domain"] == 0]
    assert first["gene"].astype(str).tolist() == ["marker", "rare", "other"]
    rare, marker = (first.set_index(first["gene"].astype(str)).loc[g] for g in ("rare", "marker"))
    assert rare["log2_enrichment"] > marker["log2_enrichment"]  # the half counts' estimate, unchanged
    assert marker["fdr"] < 1e-40 and rare["fdr"] > 0.05 and rare["pval"] == pytest.approx(0.3)


def test_domain_enrichment_matches_fisher_and_bh_and_skips_empty_domains():
    rng = np.random.default_rng(3)
    labels = rng.choice([0, 2, 3], 400)  # domain 1 has no transcript
    gene = rng.integers(0, 5, 400)
    table = domain_enrichment(labels, gene, ["a", "b", "c", "d", "e", "unused"])
    rows = []
    for d in (0, 2, 3):
        for g, name in enumerate("abcde"):
            in_d, of_g = labels == d, gene == g
            k = int((in_d & of_g).sum())
            # P(X >= k) of the hypergeometric is Fisher's one-sided exact test.
            contingency = [[k, in_d.sum() - k], [of_g.sum() - k, (~in_d & ~of_g).sum()]]
            pval = stats.fisher_exact(contingency, alternative="greater").pvalue
            share = np.log2(((k + 0.5) / in_d.sum()) / ((of_g.sum() + 0.5) / 400))
            rows.append((d, name, k, k / of_g.sum(), share, pval))
    expected = pd.DataFrame(rows, columns=list(ENRICHMENT_COLUMNS[:-1]))
    expected["fdr"] = stats.false_discovery_control(expected["pval"], method="bh")
    got = table.assign(gene=table["gene"].astype(str)).sort_values(["domain", "gene"], ignore_index=True)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, rtol=1e-12)


def test_domain_enrichment_refuses_codes_outside_their_range():
    # Gene code 2 has no name; it used to be counted as gene "a" of domain 1.
    with pytest.raises(ValueError, match="gene must hold codes >= 0 and < 2, got codes from 0 to 2"):
        domain_enrichment(np.array([0, 0, 1]), np.array([0, 2, 0]), ["a", "b"])
    with pytest.raises(ValueError, match="labels must hold codes >= 0, got codes from -1 to 1"):
        domain_enrichment(np.array([-1, 0, 1]), np.array([0, 1, 0]), ["a", "b"])
    with pytest.raises(TypeError, match="labels must hold integer codes"):
        domain_enrichment(np.array([0.5, 1.0]), np.array([0, 1]), ["a", "b"])


def test_domain_polygons_area_and_clipping():
    square = np.array([[0, 0], [4, 0], [4, 4], [0, 4], [2, 2], [1, 3]], dtype=float)
    xy = np.concatenate([square, [[10, 10], [11, 10]]])  # a 2-point group gets no outline
    cell = pd.Categorical(["c1"] * 6 + ["c2"] * 2)
    labels = np.zeros(8, dtype=int)
    hulls = domain_polygons(xy, cell, labels, ratio=1.0)
    assert list(hulls.index) == ["c1|0"]
    assert hulls.geometry.iloc[0].area == pytest.approx(16.0)
    assert hulls["n_transcripts"].iloc[0] == 6
    clip = gpd.GeoSeries([shapely.box(0, 0, 2, 4)], index=["c1"])
    clipped = domain_polygons(xy, cell, labels, ratio=1.0, cell_boundaries=clip)
    assert clipped.geometry.iloc[0].area == pytest.approx(8.0)
    with pytest.raises(ValueError):
        domain_polygons(xy, cell, labels, ratio=2.0)
    with pytest.raises(TypeError, match="^ratio must be a real number, got str$"):
        domain_polygons(xy, cell, labels, ratio="0.5")
    with pytest.raises(ValueError, match="^min_transcripts must be a positive integer, got -1$"):
        domain_polygons(xy, cell, labels, min_transcripts=-1)


def test_domain_polygons_keep_the_polygonal_part_of_a_hull_touching_a_concave_cell():
    # The hull's apex (2, 2) touches the inner edge of the U-shaped cell: the clipped
    # outline was a GeometryCollection with that point, which ShapesModel.parse (and so
    # tl.domains' write of the shapes) refused.
    from spatialdata.models import ShapesModel

    u_shape = shapely.Polygon([(0, 0), (3, 0), (3, 3), (2, 3), (2, 1), (1, 1), (1, 3), (0, 3)])
    xy = np.array([[1.2, 0.5], [1.8, 0.5], [2.0, 2.0], [1.6, 0.8]])
    outlines = domain_polygons(
        xy, pd.Categorical(["c"] * 4), np.zeros(4, dtype=int),
        cell_boundaries=gpd.GeoSeries([u_shape], index=["c"]), ratio=1.0,
    )
    assert outlines.geom_type.tolist() == ["Polygon"]
    # The triangle below y = 1: base 0.6 at y = 0.5, 0.4 at y = 1.
    assert outlines.geometry.iloc[0].area == pytest.approx(0.25)
    assert ShapesModel.parse(outlines).geom_type.tolist() == ["Polygon"]


@pytest.fixture(scope="module")
def planted():
    return stgraph.datasets.simulate(
        10, 20, n_domains=2, patterns=["none"] * 20, domain_enrichment=0.9, seed=1
    )


def test_tl_domains_recovers_planted_domains(planted):
    sdata, truth = planted
    result = domains(sdata, radius=RADIUS, n_domains=3)
    assert adjusted_rand_score(truth.transcript_domain, result.labels.codes) > 0.6
    frame = stgraph.io.transcripts_frame(sdata)
    np.testing.assert_array_equal(frame["domain"].cat.codes.to_numpy(), result.labels.codes)
    # Every planted domain's genes are the most enriched genes of some found domain.
    top = result.enrichment.groupby("domain").head(len(truth.domain_genes[1]))
    found = [set(g.astype(str)) for _, g in top.groupby("domain")["gene"]]
    for genes in truth.domain_genes.values():
        assert set(genes) in found
    uns = sdata.tables["table"].uns
    pd.testing.assert_frame_equal(uns["domain_enrichment"], result.enrichment)
    assert uns["domain_params"]["n_domains"] == 3
    shapes = sdata.shapes["domain_boundaries"]
    assert set(shapes.columns) >= {"cell_id", "domain", "n_transcripts", "geometry"}
    cells = sdata.shapes["cell_boundaries"].geometry
    inside = [cells[c].buffer(1e-6).contains(g) for c, g in zip(shapes["cell_id"], shapes.geometry)]
    assert all(inside)
    again = domains(sdata, radius=RADIUS, n_domains=3, inplace=False)
    np.testing.assert_array_equal(again.labels.codes, result.labels.codes)
    ax = plot_domains(sdata)
    assert len(ax.get_legend().get_texts()) == 3
    # The domain outlines are drawn dashed; shapes_key=None leaves them out.
    dashed = [c for c in ax.collections if c.get_linestyle()[0][1] is not None]
    assert len(dashed) == 3
    plt.close("all")
    assert not [c for c in plot_domains(sdata, shapes_key=None).collections if c.get_linestyle()[0][1] is not None]
    # A misspelt outline key is refused, not drawn as "no outlines".
    with pytest.raises(ValueError, match=re.escape("no shapes element shapes_key='domain_boundary'")):
        plot_domains(sdata, shapes_key="domain_boundary")
    plt.close("all")


def pretrained(graph, steps):
    # lr is ~0 for "untrained": pretrain needs a positive rate.
    return stgraph.tl.pretrain(
        graph, steps=max(steps, 1), lr=3e-3 if steps else 1e-12, seed=0, device="cpu",
        progress=False, batch_by="cell", batch_size=4,
    )


def test_encoder_context_finds_the_planted_domains(planted):
    # Pretraining, not the readout, finds the domains: an untrained model's
    # predictions do not depend on the place.
    sdata, truth = planted
    graph = stgraph.graph.transcript_graph(sdata, RADIUS, within="cell")
    scores = {}
    for steps in (0, 200):
        result = domains(sdata, pretrained(graph, steps), graph=graph, n_domains=3, inplace=False)
        assert result.params["representation"] == "embedding"
        scores[steps] = adjusted_rand_score(truth.transcript_domain, result.labels.codes)
    assert scores[0] < 0.1 and scores[200] > 0.8
    both = domains(sdata, pretrained(graph, 200), graph=graph, representation="both", n_domains=3, inplace=False)
    assert adjusted_rand_score(truth.transcript_domain, both.labels.codes) > 0.8
    assert both.params["n_passes"] == 7 and both.params["representation"] == "both"


def test_encoder_context_of_a_float64_model_is_that_of_its_float32_copy(planted):
    # A model converted with .double() failed in its masked-gene head ("mat1 and mat2
    # must have the same dtype"): the embeddings reach it as float32.
    sdata, _ = planted
    graph = stgraph.graph.transcript_graph(sdata, RADIUS, within="cell")
    model = pretrained(graph, 5).model
    single = domains(sdata, model, graph=graph, n_domains=2, n_passes=2, inplace=False)
    double = domains(sdata, copy.deepcopy(model).double(), graph=graph, n_domains=2, n_passes=2, inplace=False)
    np.testing.assert_array_equal(double.labels.codes, single.labels.codes)
    assert np.bincount(single.labels.codes).tolist() == [1554, 1480]


def test_tl_domains_uses_only_the_within_cell_edges(planted):
    # A graph over all pairs adds edges across cells, which domains leave out: the
    # same labels as on the within-cell graph (which takes the path without renumbering).
    sdata, _ = planted
    kept = domains(sdata, graph=stgraph.graph.transcript_graph(sdata, RADIUS, within="cell"),
                   n_domains=3, inplace=False)
    every = stgraph.graph.transcript_graph(sdata, RADIUS, within="cell")
    # The simulated cells lie apart: join transcripts of different cells by hand.
    rng = np.random.default_rng(0)
    cell = every.cell.numpy()
    src, dst = rng.integers(0, every.num_nodes, (2, 5000))
    across = torch.from_numpy(np.stack([src, dst])[:, cell[src] != cell[dst]])
    every.edge_index = torch.cat([every.edge_index, across, across.flip(0)], dim=1)
    every.edge_dist = torch.cat([every.edge_dist, torch.full((2 * across.shape[1],), RADIUS / 2)])
    np.testing.assert_array_equal(domains(sdata, graph=every, n_domains=3, inplace=False).labels.codes,
                                  kept.labels.codes)


def test_tl_domains_inputs(planted):
    sdata, _ = planted
    graph = stgraph.graph.transcript_graph(sdata, RADIUS, within="cell")
    model = pretrained(graph, 0)
    before = sdata.points["transcripts"].compute()
    smaller = stgraph.graph.transcript_graph(sdata, RADIUS / 2, within="cell")
    # The model runs on encoder_graph: its radius is the one compared with the model's.
    with pytest.warns(UserWarning, match=other_radius_message(RADIUS, RADIUS / 2, "encoder_graph")):
        result = domains(sdata, model, graph=graph, encoder_graph=smaller, representation="both",
                         n_domains=2, inplace=False)
    assert result.clustering.n_domains == 2
    pd.testing.assert_frame_equal(sdata.points["transcripts"].compute(), before)
    with pytest.raises(ValueError, match="needs a pretrained model"):
        domains(sdata, graph=graph, representation="embedding", inplace=False)
    with pytest.raises(TypeError, match="masked gene model"):
        domains(sdata, model.model.encoder, graph=graph, representation="embedding", inplace=False)
    other = stgraph.graph.transcript_graph(stgraph.datasets.simulate(2, 20, seed=3)[0], RADIUS, within="cell")
    with pytest.raises(ValueError, match="same order"):
        domains(sdata, model, graph=graph, encoder_graph=other, representation="both", inplace=False)
    # a graph that is no Data failed with "'str' object has no attribute 'get'" / "... 'num_nodes'"
    message = r"^{} must be a torch_geometric Data \(stgraph.graph.transcript_graph\), got str$"
    with pytest.raises(TypeError, match=message.format("graph")):
        domains(sdata, graph="graph", inplace=False)
    with pytest.raises(TypeError, match=message.format("encoder_graph")):
        domains(sdata, model, graph=graph, encoder_graph="graph", representation="both", inplace=False)
    with pytest.raises(ValueError, match="representation"):
        domains(sdata, graph=graph, representation="pca", inplace=False)
    with pytest.raises(ValueError, match="radius"):
        domains(sdata, inplace=False)
    with pytest.raises(ValueError, match="^seed must be an integer >= 0, got -1$"):
        domains(sdata, graph=graph, n_domains=2, seed=-1, inplace=False)
    with pytest.raises(KeyError, match="run stgraph.tl.domains"):
        plot_domains(stgraph.datasets.simulate(2, 5, seed=0)[0])
    for call in (lambda: domains(sdata, radius=RADIUS, points_key="molecules", inplace=False),
                 lambda: plot_domains(sdata, points_key="molecules")):
        with pytest.raises(KeyError, match=r"no points element 'molecules'; the points are \['transcripts'\]"):
            call()


def test_tl_domains_warns_of_a_model_pretrained_at_another_radius(planted):
    # The model's context was silently read on neighbourhoods of another size.
    sdata, _ = planted
    graph = stgraph.graph.transcript_graph(sdata, RADIUS, within="cell")
    model = pretrained(graph, 0)
    options = dict(n_domains=2, n_passes=2, inplace=False)
    alternative = " (or pass one as encoder_graph: the domains keep this graph's radius)"
    for representation in ("embedding", "both"):
        with pytest.warns(UserWarning, match=other_radius_message(RADIUS, 2 * RADIUS, alternative=alternative)):
            domains(sdata, model, radius=2 * RADIUS, representation=representation, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        domains(sdata, model, graph=graph, **options)
        wider = stgraph.graph.transcript_graph(sdata, 2 * RADIUS, within="cell")
        domains(sdata, model, graph=wider, encoder_graph=graph, representation="both", **options)
        # The composition alone does not use the model.
        domains(sdata, model, graph=wider, representation="composition", **options)


def test_tl_domains_checks_the_graph_and_its_parameters(planted):
    sdata, _ = planted
    graph = stgraph.graph.transcript_graph(sdata, RADIUS, within="cell")
    other = stgraph.graph.transcript_graph(stgraph.datasets.simulate(2, 4, seed=5)[0], RADIUS, within="cell")
    before = sdata.points["transcripts"].compute()
    for kwargs, match in [
        (dict(graph=other), f"graph has {other.num_nodes} nodes but points 'transcripts' have {graph.num_nodes}"),
        (dict(graph=graph, radius=5.0), f"radius=5.0 differs from the graph's radius {RADIUS}"),
        (dict(graph=graph, n_components=0), "n_components must be a positive integer, got 0"),
        # bandwidth was checked only where the counts use it (never for the encoder alone).
        (dict(graph=graph, bandwidth=-1.0), "^bandwidth must be a positive finite number, got -1.0$"),
        (dict(graph=graph, hull_ratio=2.0), r"hull_ratio must lie in \[0, 1\], got 2.0"),
        (dict(graph=graph, min_transcripts=0), "min_transcripts must be a positive integer, got 0"),
        (dict(graph=graph, sample_size=1), r"sample_size must be an integer of at least k_range\[1\] \+ 1 = 9"),
        (dict(radius=1e-4), r"no edge within a cell: radius=0.0001 µm is too small \(median nearest"),
    ]:
        with pytest.raises(ValueError, match=match):
            domains(sdata, **kwargs)
    for kwargs, name in ((dict(hull_ratio="0.3"), "hull_ratio must be a real number, got str"),
                         (dict(bandwidth="1.5"), "bandwidth must be a real number, got str"),
                         (dict(min_transcripts=2.5), "min_transcripts must be an integer, got 2.5")):
        with pytest.raises(TypeError, match=name):
            domains(sdata, graph=graph, **kwargs)
    pd.testing.assert_frame_equal(sdata.points["transcripts"].compute(), before)
    # Most transcripts without a neighbour in their cell: the features are their own gene.
    with pytest.warns(UserWarning, match="71% of the transcripts in cells have no neighbour within radius=0.5 µm"):
        domains(sdata, radius=0.5, n_domains=2, inplace=False)


def test_tl_domains_inplace_must_be_a_bool():
    # inplace="False" is a true string: it wrote the labels into the points.
    sdata, _ = stgraph.datasets.simulate(3, 10, n_domains=1, seed=0)
    with pytest.raises(TypeError, match=r"^inplace must be a bool \(True or False\), got 'False'$"):
        domains(sdata, radius=RADIUS, n_domains=2, inplace="False")
    assert "domain" not in sdata.points["transcripts"].columns and "table" not in sdata.tables
    result = domains(sdata, radius=RADIUS, n_domains=2, inplace=np.False_)
    assert result.clustering.n_domains == 2 and "domain" not in sdata.points["transcripts"].columns


def test_tl_domains_writes_labels_by_point_index():
    sdata, _ = stgraph.datasets.simulate(3, 9, n_domains=2, seed=0)
    spatial = stgraph.graph.transcript_graph(sdata, RADIUS, within="cell", order="spatial")
    assert not torch.equal(spatial.point_index, torch.arange(spatial.num_nodes))
    result = domains(sdata, graph=spatial, n_domains=2)
    written = stgraph.io.transcripts_frame(sdata)["domain"].cat.codes.to_numpy()
    np.testing.assert_array_equal(written[spatial.point_index.numpy()], result.labels.codes)


def test_tl_domains_output_keys_cannot_overwrite_the_data():
    sdata, _ = stgraph.datasets.simulate(3, 9, n_domains=2, seed=0)
    stgraph.io.get_table(sdata)
    before = sdata.points["transcripts"].compute()
    outlines = sdata.shapes["cell_boundaries"].copy()
    for kwargs, match in [
        (dict(key_added="gene"), "key_added='gene' would overwrite the transcript column 'gene'"),
        (dict(key_added="x"), "key_added='x' would overwrite the transcript column 'x'"),
        (dict(shapes_key="cell_boundaries"), "shapes_key='cell_boundaries' would overwrite the element"),
        (dict(shapes_key="nucleus_boundaries"), "shapes_key='nucleus_boundaries' would overwrite"),
        (dict(shapes_key="transcripts"), "shapes_key='transcripts' is the name of one of sdata's points"),
        # SpatialData names are unique across element types: refused before anything is written.
        (dict(shapes_key="table"), "shapes_key='table' is the name of one of sdata's tables"),
        # A table uns key SpatialData cannot save was stored, and sdata.write failed on it.
        (dict(key_added="a/b"), "key_added='a/b' would write the table uns key 'a/b_enrichment', which SpatialData"),
    ]:
        with pytest.raises(ValueError, match=match):
            domains(sdata, radius=RADIUS, n_domains=2, **kwargs)
    pd.testing.assert_frame_equal(sdata.points["transcripts"].compute(), before)
    pd.testing.assert_frame_equal(sdata.shapes["cell_boundaries"], outlines)
    assert list(sdata.tables["table"].uns) == ["spatialdata_attrs"]
    # Re-running with the tool's own keys replaces its previous result.
    domains(sdata, radius=RADIUS, n_domains=2)
    third = domains(sdata, radius=RADIUS, n_domains=3)
    frame = stgraph.io.transcripts_frame(sdata)
    np.testing.assert_array_equal(frame["domain"].cat.codes.to_numpy(), third.labels.codes)
    assert sdata.tables["table"].uns["domain_params"]["n_domains"] == 3
    assert set(sdata.shapes["domain_boundaries"]["domain"]) == {0, 1, 2}
    with pytest.raises(ValueError, match="key_added='Domain' would write a table uns key differing only in case "
                       "from 'domain_enrichment'"):
        domains(sdata, radius=RADIUS, n_domains=2, key_added="Domain", shapes_key="other_outlines")
    assert "Domain" not in stgraph.io.transcripts_frame(sdata).columns
    # A result without outlines does not leave the earlier run's outlines in place.
    fourth = domains(sdata, radius=RADIUS, n_domains=2, min_transcripts=10**6)
    assert len(fourth.polygons) == 0 and "domain_boundaries" not in sdata.shapes
    assert sdata.tables["table"].uns["domain_params"]["n_domains"] == 2
    with pytest.raises(ValueError, match=r"cells: not in the data: \['zz'\]"):
        plot_domains(sdata, cells=["cell_0", "zz"])


def test_tl_domains_checks_the_output_names_before_writing():
    # These names failed at their write, after the labels were in the points (and,
    # for table_key == shapes_key, the table in sdata.tables).
    sdata, _ = stgraph.datasets.simulate(3, 9, n_domains=2, seed=0)
    before = sdata.points["transcripts"].compute()
    for kwargs, match in [
        (dict(table_key="cell_boundaries"), "^table_key='cell_boundaries' is the name of one of sdata's shapes; "),
        (dict(table_key="transcripts"), "^table_key='transcripts' is the name of one of sdata's points; "),
        (dict(table_key="Transcripts"),
         "^table_key='Transcripts' differs only in case from sdata's points element 'transcripts'; "),
        (dict(table_key="out", shapes_key="out"), "^table_key='out' and shapes_key='out' name one element: "),
        (dict(table_key="Out", shapes_key="out"), "^table_key='Out' and shapes_key='out' name one element: "),
        (dict(shapes_key="my outlines"), "^shapes_key='my outlines' is not a valid SpatialData element name: "),
        (dict(table_key="my table"), "^table_key='my table' is not a valid SpatialData element name: "),
    ]:
        with pytest.raises(ValueError, match=match):
            domains(sdata, radius=RADIUS, n_domains=2, **kwargs)
    with pytest.raises(TypeError, match="^table_key must be a string, got int$"):
        domains(sdata, radius=RADIUS, n_domains=2, table_key=1)
    # A table that does not cover the cells is refused before anything is written too.
    sdata.tables["table"] = stgraph.io.cell_gene_table(sdata)[:1].copy()
    with pytest.raises(ValueError, match=r"^table 'table' does not match the points 'transcripts': 2 cell\(s\)"):
        domains(sdata, radius=RADIUS, n_domains=2)
    pd.testing.assert_frame_equal(sdata.points["transcripts"].compute(), before)
    assert list(sdata.tables) == ["table"] and list(sdata.tables["table"].uns) == ["spatialdata_attrs"]
    assert sorted(sdata.shapes) == ["cell_boundaries", "nucleus_boundaries"]


def dashed(ax):
    """The domain outlines that pl.domains drew (dashed, one collection per domain)."""
    return [c for c in ax.collections if c.get_linestyle()[0][1] is not None]


def test_tl_domains_runs_under_two_keys_keep_their_own_outlines():
    # Both runs wrote "domain_boundaries": the second's three domains replaced the
    # first's two, and pl.domains of the first failed with an IndexError.
    sdata, _ = stgraph.datasets.simulate(3, 9, n_domains=2, seed=0)
    domains(sdata, radius=RADIUS, n_domains=2, seed=0)
    domains(sdata, radius=RADIUS, n_domains=3, key_added="dom3", seed=0)
    uns = sdata.tables["table"].uns
    assert uns["domain_params"]["shapes_key"] == "domain_boundaries"
    assert uns["dom3_params"]["shapes_key"] == "dom3_boundaries"
    assert set(sdata.shapes["domain_boundaries"]["domain"]) == {0, 1}
    assert set(sdata.shapes["dom3_boundaries"]["domain"]) == {0, 1, 2}
    assert len(dashed(plot_domains(sdata))) == 2
    assert len(dashed(plot_domains(sdata, key="dom3"))) == 3
    plt.close("all")
    # Outlines of another run are refused, naming the labels that do not fit.
    with pytest.raises(ValueError, match=re.escape(
        "shapes_key='dom3_boundaries' outlines domains [2] that are not categories of key='domain' ([0, 1])"
    )):
        plot_domains(sdata, shapes_key="dom3_boundaries")
    # An explicit shapes_key is written and recorded instead of the default.
    domains(sdata, radius=RADIUS, n_domains=2, key_added="named", shapes_key="named_outlines", seed=0)
    assert uns["named_params"]["shapes_key"] == "named_outlines"
    assert "named_outlines" in sdata.shapes and "named_boundaries" not in sdata.shapes
    assert len(dashed(plot_domains(sdata, key="named", shapes_key="named_outlines"))) == 2
    # "auto" finds no named_boundaries: no outlines, quietly (a tl.domains run can leave none).
    assert not dashed(plot_domains(sdata, key="named"))
    plt.close("all")


def test_tl_domains_outlines_are_in_the_coordinate_systems_of_the_points():
    # Written with the identity to "global", the outlines of points in pixels scaled to
    # "sample" (as spatialdata.concatenate names the systems of each sample) lay in
    # another system, and a query in "sample" left them out.
    from spatialdata.transformations import Scale, get_transformation, set_transformation

    sdata, _ = stgraph.datasets.simulate(3, 9, n_domains=2, seed=0)
    to_sample = {"sample": Scale([0.5, 0.5], axes=("x", "y"))}
    for element in (*sdata.points.values(), *sdata.shapes.values()):
        set_transformation(element, to_sample, set_all=True)
    domains(sdata, radius=RADIUS, n_domains=2, seed=0)
    outlines = sdata.shapes["domain_boundaries"]
    assert get_transformation(outlines, get_all=True) == to_sample
    box = spatialdata.bounding_box_query(
        sdata.subset(["domain_boundaries"]), axes=("x", "y"), min_coordinate=[-1e4, -1e4], max_coordinate=[1e4, 1e4], target_coordinate_system="sample"
    )
    assert len(box.shapes["domain_boundaries"]) == len(outlines)


def two_samples():
    """Two simulated samples in one SpatialData, each with its own cell outlines; both
    name their cells ``cell_0 ..`` and lie in the same coordinates, as samples joined
    by :func:`spatialdata.concatenate` can."""
    a, _ = stgraph.datasets.simulate(3, 9, n_domains=2, seed=0)
    b, _ = stgraph.datasets.simulate(3, 9, n_domains=2, seed=1)
    return spatialdata.SpatialData(
        points={"points_a": a.points["transcripts"], "points_b": b.points["transcripts"]},
        shapes={"cells_a": a.shapes["cell_boundaries"], "cells_b": b.shapes["cell_boundaries"]},
    )


def in_their_cells(polygons, cells) -> list[bool]:
    """Whether each domain outline lies within the outline of its cell in ``cells``."""
    return [cells.geometry[c].buffer(1e-6).covers(g) for c, g in zip(polygons["cell_id"], polygons.geometry)]


def test_tl_domains_clips_with_the_cell_outlines_of_cell_key():
    # Outlines were always clipped with "cell_boundaries": with two samples, those of the
    # other one (cells_a here), or none at all when no element had that name.
    sdata = two_samples()
    cells_b = sdata.shapes["cells_b"].copy()
    run = dict(radius=RADIUS, n_domains=2, points_key="points_b", seed=0)
    hulls = domains(sdata, cell_key=None, inplace=False, **run)
    clipped = domains(sdata, cell_key="cells_b", **run)
    np.testing.assert_array_equal(clipped.labels.codes, hulls.labels.codes)
    assert len(clipped.polygons) == len(hulls.polygons) == 6
    assert all(in_their_cells(clipped.polygons, cells_b))
    # The bare hulls: one reaches outside its cell, and clipping cuts exactly that off.
    assert in_their_cells(hulls.polygons, cells_b) == [True, True, False, True, True, True]
    expected = [h.intersection(cells_b.geometry[c]) for c, h in zip(hulls.polygons["cell_id"], hulls.polygons.geometry)]
    assert [g.symmetric_difference(e).area < 1e-9 for g, e in zip(clipped.polygons.geometry, expected)] == [True] * 6
    assert clipped.params["cell_key"] == "cells_b" and hulls.params["cell_key"] is None
    table = sdata.tables["table"]
    assert table.uns["domain_params"]["cell_key"] == "cells_b"
    assert table.uns["spatialdata_attrs"]["region"] == "cells_b"
    assert sdata.shapes["points_b_domain_boundaries"].geom_equals(clipped.polygons.geometry).all()
    pd.testing.assert_frame_equal(sdata.shapes["cells_b"], cells_b)
    # Without a "cell_boundaries" element the default still clips nothing (as before).
    default = domains(sdata, inplace=False, **run)
    assert default.polygons.geometry.geom_equals(hulls.polygons.geometry).all()
    assert default.params["cell_key"] is None
    # The old behaviour, other outlines under the default name: sample a's cells clip b's.
    sdata.shapes["cell_boundaries"] = sdata.shapes["cells_a"]
    wrong = domains(sdata, inplace=False, **run)
    assert len(wrong.polygons) == 4 and not all(in_their_cells(wrong.polygons, cells_b))
    assert wrong.params["cell_key"] == "cell_boundaries"
    chosen = domains(sdata, cell_key="cells_b", inplace=False, **run)
    assert chosen.polygons.geometry.geom_equals(clipped.polygons.geometry).all()


def test_runs_on_two_samples_keep_their_own_domain_outlines():
    # Both runs wrote "domain_boundaries": sample b's outlines replaced sample a's.
    sdata = two_samples()
    run = dict(radius=RADIUS, n_domains=2, seed=0)
    a = domains(sdata, points_key="points_a", cell_key="cells_a", table_key="table_a", **run)
    b = domains(sdata, points_key="points_b", cell_key="cells_b", table_key="table_b", **run)
    assert a.params["shapes_key"] == "points_a_domain_boundaries"
    assert b.params["shapes_key"] == "points_b_domain_boundaries"
    for result in (a, b):
        outlines = sdata.shapes[result.params["shapes_key"]]
        assert len(outlines) == len(result.polygons) > 0
        assert outlines.geometry.geom_equals(result.polygons.geometry).all()
    assert "domain_boundaries" not in sdata.shapes
    # pl.domains finds each sample's outlines by the same default.
    for result, points in ((a, "points_a"), (b, "points_b")):
        ax = plot_domains(sdata, points_key=points, cell_key=None, nucleus_key=None)
        rings = [shapely.LinearRing(s) for c in ax.collections if hasattr(c, "get_segments") for s in c.get_segments()]
        assert len(rings) == len(result.polygons)
        assert all(any(r.equals(g.exterior) for r in rings) for g in result.polygons.geometry)
        plt.close("all")
    # The default points keep the plain name.
    assert default_shapes_key("domain") == default_shapes_key("domain", "transcripts") == "domain_boundaries"


def test_tl_domains_refuses_a_cell_key_that_names_no_outlines():
    sdata = two_samples()
    run = dict(radius=RADIUS, n_domains=2, points_key="points_b")
    # A misspelt name would otherwise pass silently as "no clipping".
    with pytest.raises(ValueError, match=re.escape(
        "sdata has no shapes element cell_key='cells_c'; it has ['cells_a', 'cells_b'] (pass cell_key=None for none)"
    )):
        domains(sdata, cell_key="cells_c", **run)
    with pytest.raises(TypeError, match=r"^cell_key must be a string or None, got list$"):
        domains(sdata, cell_key=["cells_b"], **run)
    # Writing the domain outlines over the cell outlines read would lose them.
    with pytest.raises(ValueError, match=re.escape(
        "shapes_key='cells_b' would overwrite the element 'cells_b' of the data; choose another name"
    )):
        domains(sdata, cell_key="cells_b", shapes_key="cells_b", **run)
    assert "domain" not in sdata.points["points_b"].columns and not sdata.tables
    assert sorted(sdata.shapes) == ["cells_a", "cells_b"]
    # Outlines in other coordinates than the points are refused under any name.
    from spatialdata.transformations import Scale, set_transformation

    set_transformation(sdata.shapes["cells_b"], Scale([2.0, 2.0], axes=("x", "y")), "global")
    with pytest.raises(ValueError, match="^shapes 'cells_b' have another transformation to 'global'"):
        domains(sdata, cell_key="cells_b", **run)


def grey_segments(ax, colour: str) -> list[np.ndarray]:
    """Vertices of the outlines that pl.domains drew in the grey ``colour``."""
    rgba = matplotlib.colors.to_rgba(colour)
    return [s for c in ax.collections if tuple(c.get_edgecolor()[0]) == rgba for s in c.get_segments()]


def test_pl_domains_draws_the_cell_outlines_of_cell_key():
    # pl.domains drew "cell_boundaries" whatever the points: another sample's cells.
    sdata = two_samples()
    sdata.shapes["cell_boundaries"] = sdata.shapes["cells_a"]
    domains(sdata, radius=RADIUS, n_domains=2, points_key="points_b", cell_key="cells_b", seed=0)
    drawn = grey_segments(plot_domains(sdata, points_key="points_b", cell_key="cells_b"), "0.2")
    # The same rings (matplotlib gets them from another starting vertex).
    rings = [shapely.LinearRing(d) for d in drawn]
    assert [r.equals(g.exterior) for r, g in zip(rings, sdata.shapes["cells_b"].geometry)] == [True] * 3
    assert not any(r.equals(g.exterior) for r, g in zip(rings, sdata.shapes["cells_a"].geometry))
    # The default draws "cell_boundaries", here sample a's.
    default = [shapely.LinearRing(d) for d in grey_segments(plot_domains(sdata, points_key="points_b"), "0.2")]
    assert [r.equals(g.exterior) for r, g in zip(default, sdata.shapes["cells_a"].geometry)] == [True] * 3
    assert not grey_segments(plot_domains(sdata, points_key="points_b", cell_key=None), "0.2")
    plt.close("all")
    with pytest.raises(ValueError, match=re.escape("sdata has no shapes element nucleus_key='nuclei_b'; it has")):
        plot_domains(sdata, points_key="points_b", cell_key="cells_b", nucleus_key="nuclei_b")
    assert not plt.get_fignums()  # refused before a figure was made


def read(x, y, gene, cell):
    frame = pd.DataFrame({"x": np.asarray(x, float), "y": np.asarray(y, float), "gene": gene, "cell": cell})
    return stgraph.io.read_transcripts(frame, x="x", y="y", gene="gene", cell="cell")


def test_tl_domains_needs_two_genes_in_cells():
    # One gene gave no feature at all, and scikit-learn's "Found array with 0 feature(s)".
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 10, (70, 2))
    # Gene b only outside cells: the transcripts in cells are still of one gene.
    sdata = read(xy[:, 0], xy[:, 1], ["a"] * 60 + ["b"] * 10, ["c1"] * 30 + ["c2"] * 30 + ["UNASSIGNED"] * 10)
    for kwargs in (dict(n_domains=2), dict()):
        with pytest.raises(ValueError, match=re.escape(
            "domains need transcripts of at least two genes in cells (a domain is a place where some genes "
            "are denser than in the rest of the cell); all are 'a'"
        )):
            domains(sdata, radius=RADIUS, inplace=False, **kwargs)


def test_tl_domains_needs_cells_of_two_transcripts():
    # One transcript per cell was refused as "radius=3 µm is too small", which no radius mends.
    sdata = read(np.arange(20) * 10.0, np.zeros(20), list("ab") * 10, [f"c{i}" for i in range(20)])
    with pytest.raises(ValueError, match=re.escape(
        "domains need cells with at least two transcripts (a neighbourhood lies within its cell); "
        "no cell has two (20 transcripts are in cells)"
    )):
        domains(sdata, radius=RADIUS, n_domains=2, inplace=False)


def test_tl_domains_too_few_transcripts_names_those_in_cells():
    # "cannot make 5 domains out of 4 transcripts" puzzled a user whose sample held 12.
    sdata = read(np.arange(12) * 0.5, np.zeros(12), list("ab") * 6, ["c1"] * 4 + ["UNASSIGNED"] * 8)
    with pytest.raises(ValueError, match=re.escape(
        "cannot make 5 domains out of 4 transcripts assigned to cells (of 12 in the sample; "
        "transcripts outside cells get no domain)"
    )):
        domains(sdata, radius=RADIUS, n_domains=5, inplace=False)
    with pytest.raises(ValueError, match=re.escape(
        "4 transcripts assigned to cells (of 12 in the sample; transcripts outside cells get no domain) "
        "are too few to choose k in (5, 6)"
    )):
        domains(sdata, radius=RADIUS, k_range=(5, 6), inplace=False)


@pytest.mark.parametrize(("k_range", "error", "match"), [
    ((2,), ValueError, "k_range must be a pair (low, high) of integers, got 1 values: (2,)"),
    ((2, 3, 4), ValueError, "k_range must be a pair (low, high) of integers, got 3 values: (2, 3, 4)"),
    (None, TypeError, "k_range must be a pair (low, high) of integers, got None"),
    (5, TypeError, "k_range must be a pair (low, high) of integers, got 5"),
    ("23", TypeError, "k_range must be a pair (low, high) of integers, got '23'"),
    ((2.0, 4), TypeError, "k_range[0] must be an integer, got 2.0"),
    ((2, 4.5), TypeError, "k_range[1] must be an integer, got 4.5"),
    ((True, 3), TypeError, "k_range[0] must be an integer, got True"),
    ((1, 3), ValueError, "k_range[0] must be an integer >= 2, got 1"),
    ((5, 3), ValueError, "k_range must satisfy low <= high, got (5, 3)"),
])
def test_k_range_is_checked_up_front(k_range, error, match):
    # These failed inside the clustering ("not enough values to unpack", "'float' object
    # cannot be interpreted as an integer") or, with n_domains given, passed unchecked.
    points, _ = blobs([30, 30])
    with pytest.raises(error, match=f"^{re.escape(match)}$"):
        cluster_domains(points, k_range=k_range)
    with pytest.raises(error, match=f"^{re.escape(match)}$"):
        cluster_domains(points, 2, k_range=k_range)
    sdata, _ = stgraph.datasets.simulate(2, 5, seed=0)
    with pytest.raises(error, match=f"^{re.escape(match)}$"):
        domains(sdata, radius=RADIUS, k_range=k_range)
    assert "domain" not in sdata.points["transcripts"].columns and not sdata.tables


def test_k_range_may_be_any_pair_of_integers():
    points, _ = blobs([100, 60, 40])
    for k_range in ([2, 4], np.array([2, 4]), (np.int64(2), np.int64(4))):
        chosen = cluster_domains(points, k_range=k_range)
        assert chosen.n_domains == 3 and set(chosen.criterion) == {2, 3, 4}


def test_tl_domains_records_every_setting(tmp_path):
    # k_range, sample_size, hull_ratio, min_transcripts and shapes_key were not recorded.
    import json

    import anndata as ad

    sdata, _ = stgraph.datasets.simulate(3, 9, n_domains=2, seed=0)
    result = domains(sdata, radius=RADIUS, k_range=(2, 3), sample_size=200, hull_ratio=0.5,
                     min_transcripts=4, n_components=4, seed=3, key_added="dom", shapes_key="dom_shapes")
    params = sdata.tables["table"].uns["dom_params"]
    settings = {k: v for k, v in params.items() if not k.startswith("criterion_")}
    assert settings == {
        "n_domains": result.clustering.n_domains, "representation": "composition", "method": "kmeans",
        "radius": RADIUS, "bandwidth": RADIUS / 2, "n_components": 4, "n_passes": 7, "seed": 3,
        "k_range": [2, 3], "sample_size": 200, "hull_ratio": 0.5, "min_transcripts": 4,
        "cell_key": "cell_boundaries", "shapes_key": "dom_shapes",
    }
    assert all(type(v) in (int, float, str, list) for v in settings.values())
    json.dumps(settings)
    np.testing.assert_array_equal(params["criterion_k"], [2, 3])
    sdata.tables["table"].write_h5ad(tmp_path / "table.h5ad")
    read = ad.read_h5ad(tmp_path / "table.h5ad").uns["dom_params"]
    assert read["k_range"].tolist() == [2, 3] and read["shapes_key"] == "dom_shapes"
    assert read["hull_ratio"] == 0.5 and read["sample_size"] == 200 and read["min_transcripts"] == 4


def test_tl_domains_checks_settings_it_records_even_where_unused():
    sdata, _ = stgraph.datasets.simulate(2, 5, seed=0)
    with pytest.raises(ValueError, match="^n_passes must be an integer >= 2, got 1$"):
        domains(sdata, radius=RADIUS, n_domains=2, n_passes=1)
    with pytest.raises(TypeError, match="^sample_size must be an integer, got '5000'$"):
        domains(sdata, radius=RADIUS, n_domains=2, sample_size="5000")
    with pytest.raises(TypeError, match="^sample_size must be an integer, got 2.5$"):
        cluster_domains(blobs([20, 20])[0], k_range=(2, 3), method="gmm", sample_size=2.5)
    assert "domain" not in sdata.points["transcripts"].columns and not sdata.tables


def test_pl_domains_draws_a_cell_without_nucleus_quietly():
    # The nucleus outlines selected for such a cell are empty: geopandas warned
    # "The GeoSeries you are attempting to plot is empty".
    import warnings

    sdata, _ = stgraph.datasets.simulate(4, 9, n_domains=2, frac_cells_without_nucleus=0.5, seed=0)
    domains(sdata, radius=RADIUS, n_domains=2, seed=0)
    without = sorted(set(sdata.shapes["cell_boundaries"].index) - set(sdata.shapes["nucleus_boundaries"].index))
    assert without
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ax = plot_domains(sdata, cells=without[:1])
    # The points, the cell's outline and its domain outlines; no nucleus.
    outlines = sdata.shapes["domain_boundaries"]
    assert len(ax.collections) == 2 + outlines["cell_id"].eq(without[0]).sum()
    plt.close("all")


def test_pl_domains_legend_lists_the_domains_of_the_cells_drawn():
    # With cells=, the legend listed every domain, also those absent from the cells drawn.
    from stgraph.tl._points_output import set_points_columns

    sdata, _ = stgraph.datasets.simulate(4, 9, n_domains=2, seed=0)
    domains(sdata, radius=RADIUS, n_domains=3, seed=0, shapes_key=None)
    frame = sdata.points["transcripts"].compute()
    cell = sorted(frame["cell_id"].dropna().unique())[0]
    frame.loc[frame["cell_id"] == cell, "domain"] = 2  # the cell drawn holds domain 2 only
    set_points_columns(sdata, "transcripts", frame, {})
    legends = []
    for selection in ([cell], None):
        ax = plot_domains(sdata, cells=selection)
        legends.append(([text.get_text() for text in ax.get_legend().get_texts()],
                        [tuple(handle.get_color()) for handle in ax.get_legend().legend_handles]))
        plt.close("all")
    assert legends[0][0] == ["domain 2"] and legends[1][0] == ["domain 0", "domain 1", "domain 2"]
    assert legends[0][1] == legends[1][1][2:]


def test_pl_domains_needs_categorical_labels():
    # A numeric column failed with pandas' "Can only use .cat accessor with a 'category' dtype".
    from stgraph.tl._points_output import set_points_columns

    sdata, _ = stgraph.datasets.simulate(2, 5, seed=0)
    frame = sdata.points["transcripts"].compute().copy()
    set_points_columns(sdata, "transcripts", frame, {"domain": np.zeros(len(frame))})
    with pytest.raises(ValueError, match=re.escape(
        "column 'domain' of points 'transcripts' must hold categorical domain labels (as "
        "stgraph.tl.domains writes them), got dtype float64"
    )):
        plot_domains(sdata)


def test_pl_domains_refuses_an_empty_cell_selection():
    # cells=[] drew no transcript and no outline.
    sdata, _ = stgraph.datasets.simulate(2, 5, n_domains=1, seed=0)
    domains(sdata, radius=RADIUS, n_domains=2, seed=0)
    with pytest.raises(ValueError, match="^cells is empty: name at least one, or pass None for all$"):
        plot_domains(sdata, cells=[])


def test_pl_domains_refuses_a_marker_size_that_draws_nothing():
    # a negative or NaN size drew no transcript, silently
    sdata, _ = stgraph.datasets.simulate(2, 5, n_domains=1, seed=0)
    domains(sdata, radius=RADIUS, n_domains=2, seed=0)
    for size in (-1, float("nan")):
        with pytest.raises(ValueError, match=f"^size must be a positive finite number, got {size:.1f}$"):
            plot_domains(sdata, size=size)


def test_tl_domains_refuses_outlines_of_the_wrong_kind_before_its_work(monkeypatch):
    from spatialdata.models import ShapesModel

    sdata, _ = stgraph.datasets.simulate(3, 9, n_domains=2, seed=0)
    cells = sdata.shapes["cell_boundaries"]
    geometry = [cells.geometry.iloc[0].centroid, *cells.geometry.iloc[1:]]
    sdata.shapes["cell_boundaries"] = ShapesModel.parse(gpd.GeoDataFrame({"radius": 1.0}, geometry=geometry, index=cells.index))

    def no_work(*args, **kwargs):
        raise AssertionError("the features were computed before the outlines were checked")

    monkeypatch.setattr("stgraph.tl._domains._features", no_work)
    with pytest.raises(ValueError, match=re.escape("shapes element 'cell_boundaries' holds ['Point', 'Polygon'] geometries")):
        domains(sdata, radius=RADIUS, n_domains=2)


def test_pl_domains_colours_a_domain_alike_after_a_zarr_store(tmp_path):
    # pyarrow writes integer categories as plain integers: read back, the labels come in
    # order of first appearance, and pl.domains gave domain 2 the colour and legend
    # place of domain 0.
    import spatialdata

    from stgraph.tl._points_output import set_points_columns

    sdata, _ = stgraph.datasets.simulate(3, 9, n_domains=2, seed=0)
    domains(sdata, radius=RADIUS, n_domains=3, seed=0)
    frame = sdata.points["transcripts"].compute()
    # Rows of the highest domain first: their label is the first the store reads back.
    order = np.argsort(-frame["domain"].cat.codes.to_numpy(), kind="stable")
    set_points_columns(sdata, "transcripts", frame.iloc[order].copy(), {})
    sdata.write(tmp_path / "domains.zarr")
    back = spatialdata.read_zarr(tmp_path / "domains.zarr")
    labels = back.points["transcripts"]["domain"].compute()
    assert labels.cat.categories.tolist() == [2, 1, 0]
    assert labels.astype(float).equals(sdata.points["transcripts"]["domain"].compute().astype(float))
    drawn = []
    for data in (sdata, back):
        ax = plot_domains(data)
        drawn.append((
            [text.get_text() for text in ax.get_legend().get_texts()],
            ax.collections[0].get_facecolors(),
            [tuple(c.get_edgecolor()[0]) for c in dashed(ax)],
        ))
        plt.close("all")
    assert drawn[0][0] == drawn[1][0] == ["domain 0", "domain 1", "domain 2"]
    np.testing.assert_array_equal(drawn[0][1], drawn[1][1])
    assert drawn[0][2] == drawn[1][2] and len(drawn[0][2]) == 3


def test_pl_domains_names_what_to_pass_for_a_result():
    # The colocalization plots take their result; this one said only "expected a SpatialData, got DomainResult".
    sdata, _ = stgraph.datasets.simulate(2, 5, n_domains=1, seed=0)
    result = domains(sdata, radius=RADIUS, n_domains=2, seed=0, inplace=False)
    with pytest.raises(TypeError, match=re.escape(
        "pl.domains draws the transcripts of a SpatialData, not a DomainResult (it holds no positions): "
        "run stgraph.tl.domains with inplace=True and pass the SpatialData"
    )):
        plot_domains(result)
    with pytest.raises(TypeError, match="^expected a SpatialData, got AnnData$"):
        plot_domains(stgraph.io.cell_gene_table(sdata))


def test_pl_domains_gives_distinct_colours_from_a_continuous_map_and_warns_when_they_repeat():
    # cmap="viridis" took its first three of 256 colours, all dark purple (0.267, 0.005,
    # 0.329) to two decimals; more domains than a qualitative map's colours shared them silently.
    import warnings

    sdata, _ = stgraph.datasets.simulate(3, 9, n_domains=2, seed=0)
    domains(sdata, radius=RADIUS, n_domains=3, seed=0)
    drawn = {}
    for cmap in ("viridis", "tab10"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ax = plot_domains(sdata, cmap=cmap, shapes_key=None)
        drawn[cmap] = [tuple(handle.get_color()) for handle in ax.get_legend().legend_handles]
    assert drawn["viridis"] == [tuple(plt.get_cmap("viridis")(x)) for x in (0.0, 0.5, 1.0)]
    # A qualitative map gives its colours in turn, as before.
    assert drawn["tab10"] == [tuple(plt.get_cmap("tab10")(k)) for k in range(3)]
    domains(sdata, radius=RADIUS, n_domains=9, seed=0, key_added="many")
    with pytest.warns(UserWarning, match=re.escape(
        "9 domains but cmap='Accent' has 8 colours: domain 8 and above repeat the colours of the first "
        "ones; pass a qualitative map with more colours (e.g. 'tab20') or a continuous one (e.g. 'turbo')"
    )):
        ax = plot_domains(sdata, key="many", cmap="Accent", shapes_key=None)
    colours = [tuple(handle.get_color()) for handle in ax.get_legend().legend_handles]
    assert colours[8] == colours[0] and len(set(colours)) == 8
    plt.close("all")

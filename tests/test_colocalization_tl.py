"""stgraph.tl.colocalization on simulated SpatialData, with and without an encoder; plots."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import re  # noqa: E402
import warnings  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch_geometric.nn import GATConv, GCNConv, MessagePassing  # noqa: E402

import stgraph  # noqa: E402
from stgraph.coloc import PAIR_COLUMNS, ColocalizationResult, score_pairs  # noqa: E402
from stgraph.coloc._encode import encoder_outputs  # noqa: E402
from stgraph.nn import EdgeDistAdapter, TranscriptEncoder  # noqa: E402
from stgraph.pl._colocalization import colocalization_heatmap, colocalization_network  # noqa: E402
from stgraph.tl._colocalization import colocalization  # noqa: E402
from tests.test_colocalization_stats import stacked_pair  # noqa: E402
from tests.test_pretrain import other_radius_message  # noqa: E402

RADIUS = 2.0


def simulated():
    return stgraph.datasets.simulate(6, 12, colocalized_pairs=2, seed=0)


@pytest.fixture(scope="module")
def graph():
    return stgraph.graph.transcript_graph(simulated()[0], RADIUS, within="cell")


@pytest.fixture
def sample(graph):
    """A fresh SpatialData (tests write into it), its truth and its (shared) graph."""
    sdata, truth = simulated()
    return sdata, truth, graph


@pytest.fixture(scope="module")
def encoder(graph):
    torch.manual_seed(0)
    return TranscriptEncoder(len(graph.gene_names), d_model=16, n_layers=2, heads=2)


def test_uniform_weights_write_the_documented_keys(sample):
    sdata, _, graph = sample
    result = colocalization(sdata, graph=graph)
    uns = sdata.tables["table"].uns
    assert list(uns["colocalization"].columns[:8]) == [
        "gene_a", "gene_b", "score", "clq", "z", "pval", "fdr", "n_cells"
    ]
    assert list(uns["colocalization"].columns) == list(PAIR_COLUMNS)
    assert uns["colocalization_params"]["weight"] == "uniform"
    pd.testing.assert_frame_equal(ColocalizationResult.from_uns(uns).table, result.table)
    # Same numbers as the model-free core on the same graph, controls left out.
    gene = np.where(graph.is_control.numpy(), -1, graph.gene.numpy())
    core = score_pairs(graph.edge_index.numpy(), gene, graph.cell.numpy(), gene_names=graph.gene_names)
    pd.testing.assert_frame_equal(core.table, result.table)
    # Without shrinkage the score is the log2 of observed over expected neighbour shares.
    raw = colocalization(sdata, graph=graph, prior_events=0.0, inplace=False).table
    np.testing.assert_allclose(raw["score"], np.log2(raw["mass"] / raw["expected"]))
    assert core.params["prior_events"] == 16.0


def test_planted_pairs_are_the_most_significant(sample):
    sdata, truth, graph = sample
    table = colocalization(sdata, graph=graph, inplace=False).table
    distinct = table[table["gene_a"] != table["gene_b"]].sort_values("fdr", kind="stable")
    top = {frozenset(p) for p in zip(distinct["gene_a"].astype(str)[:4], distinct["gene_b"].astype(str)[:4])}
    assert top == {frozenset(p) for p in zip(truth.pairs["gene_a"], truth.pairs["gene_b"])}
    assert (distinct["fdr"].iloc[:4] < 1e-6).all()


def test_attention_weights_from_the_encoder(sample, encoder):
    sdata, _, graph = sample
    whole = encoder_outputs(encoder, graph, attention=True, max_edges=10**9)
    chunked = encoder_outputs(encoder, graph, attention=True, max_edges=2000)
    np.testing.assert_allclose(chunked.embedding, whole.embedding, atol=1e-5)
    np.testing.assert_allclose(chunked.attention, whole.attention, atol=1e-6)
    # Softmax over each target's incoming edges, averaged: sums to 1 per target.
    dst = graph.edge_index[1].numpy()
    sums = np.bincount(dst, weights=whole.attention, minlength=graph.num_nodes)
    np.testing.assert_allclose(sums[np.unique(dst)], 1.0, rtol=1e-5)
    by_model = colocalization(sdata, encoder, graph=graph, inplace=False)
    by_weights = colocalization(sdata, graph=graph, attention=whole.attention, inplace=False)
    pd.testing.assert_frame_equal(by_model.table, by_weights.table)
    assert by_model.params["weight"] == "attention"
    # A different weighting of the same edges changes the score but not the quotients.
    uniform = colocalization(sdata, graph=graph, inplace=False)
    np.testing.assert_array_equal(by_model.table["clq"], uniform.table["clq"])
    assert not np.allclose(by_model.table["score"], uniform.table["score"])


def gat_with_self_loops(d_model, heads):
    # GATConv's default add_self_loops=True: attention over the graph plus one loop per node.
    return EdgeDistAdapter(GATConv(d_model, d_model // heads, heads=heads))


def test_attention_of_a_layer_that_adds_self_loops_is_taken_on_the_graph_edges(sample):
    # The README's EdgeDistAdapter(GATConv(...)) returns weights on E + N edges, loops
    # last; colocalization refused it ("attention on edges other than the graph's").
    sdata, _, graph = sample
    torch.manual_seed(0)
    encoder = TranscriptEncoder(len(graph.gene_names), d_model=16, n_layers=2, heads=2, conv=gat_with_self_loops)
    with torch.no_grad():
        _, layers = encoder.eval()(graph, return_attention_weights=True)
    edges = graph.edge_index.T.tolist()
    expected = np.zeros(len(edges))
    for returned, alpha in layers:
        assert returned.shape[1] == len(edges) + graph.num_nodes
        row = {(s, t): k for k, (s, t) in enumerate(returned.T.tolist())}
        expected += alpha.mean(dim=1).numpy()[[row[tuple(e)] for e in edges]] / len(layers)
    outputs = encoder_outputs(encoder, graph, attention=True, max_edges=2000)
    np.testing.assert_allclose(outputs.attention, expected, rtol=1e-5, atol=1e-7)
    # The loops' share is left out: each target's weights sum to less than 1.
    sums = np.bincount(graph.edge_index[1].numpy(), weights=outputs.attention, minlength=graph.num_nodes)
    assert 0.5 < sums.max() < 1 - 1e-3
    by_model = colocalization(sdata, encoder, graph=graph, inplace=False)
    by_weights = colocalization(sdata, graph=graph, attention=outputs.attention, inplace=False)
    pd.testing.assert_frame_equal(by_model.table, by_weights.table)


class DistanceDecay(MessagePassing):
    """A layer without attention weights: neighbours averaged with weights exp(-d)."""

    def __init__(self, d_model, heads):
        super().__init__(aggr="mean")
        self.lin = torch.nn.Linear(d_model, d_model)

    def forward(self, x, edge_index, edge_dist):
        return self.propagate(edge_index, x=self.lin(x), weight=torch.exp(-edge_dist))

    def message(self, x_j, weight):
        return weight[:, None] * x_j


@pytest.mark.parametrize(
    ("conv", "name"),
    [(DistanceDecay, "DistanceDecay"),
     (lambda d, h: EdgeDistAdapter(GCNConv(d, d), edge_dist_arg="edge_weight"), "GCNConv")],
)
def test_a_layer_without_attention_weights_is_refused_before_the_graph_is_built(sample, monkeypatch, conv, name):
    sdata, _, _ = sample
    encoder = TranscriptEncoder(12, d_model=16, n_layers=2, heads=2, conv=conv)

    def no_graph(*args, **kwargs):
        raise AssertionError("the graph was built before the model was checked")

    monkeypatch.setattr(stgraph.tl._colocalization, "graph_for", no_graph)
    message = (
        f"the encoder's layers ({name}) return no attention weights (their forward has no "
        "return_attention_weights argument), and the attention score weights the edges by them: "
        "pass model=None for uniform weights, or attention= with weights of your own"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        colocalization(sdata, encoder, radius=RADIUS)
    assert "table" not in sdata.tables


def test_attention_per_layer_and_head_is_averaged(sample):
    sdata, _, graph = sample
    rng = np.random.default_rng(0)
    layers = [rng.random((graph.edge_index.shape[1], 3)) for _ in range(2)]
    mean = (layers[0].mean(axis=1) + layers[1].mean(axis=1)) / 2
    a = colocalization(sdata, graph=graph, attention=layers, inplace=False)
    b = colocalization(sdata, graph=graph, attention=torch.tensor(mean), inplace=False)
    pd.testing.assert_frame_equal(a.table, b.table)
    # A list of numbers is one weight per edge: each number was read as a layer
    # ("attention must have one row per edge (E), got shape ()").
    c = colocalization(sdata, graph=graph, attention=mean.tolist(), inplace=False)
    pd.testing.assert_frame_equal(c.table, b.table)


@pytest.mark.parametrize("value", [np.nan, -1.0])
def test_attention_must_be_finite_and_non_negative(sample, value):
    # The message named score_pairs' weight, an argument the caller never passed.
    sdata, _, graph = sample
    bad = np.full((graph.edge_index.shape[1], 2), value)
    with pytest.raises(ValueError, match=r"^attention\[1\] must be finite and non-negative$"):
        colocalization(sdata, graph=graph, attention=[np.ones_like(bad), bad])
    assert "table" not in sdata.tables


@pytest.mark.parametrize(("attention", "error", "message"), [
    # Strings were parsed as numbers, booleans and complex numbers converted.
    (lambda e: np.full(e, "0.5"), TypeError,
     "attention must be an array or tensor of real numbers, one row per edge; got dtype <U3"),
    (lambda e: np.ones(e, dtype=bool), TypeError,
     "attention must be an array or tensor of real numbers, one row per edge; got dtype bool"),
    (lambda e: torch.ones(e, dtype=torch.complex64), TypeError,
     "attention must be an array or tensor of real numbers, one row per edge; got dtype torch.complex64"),
    (lambda e: {"layer": np.ones(e)}, TypeError,
     "attention must be an array or tensor of real numbers, one row per edge; got dtype object"),
    # A number among the layers said "got shape ()".
    (lambda e: [np.ones(e), 0.5], ValueError,
     "attention[1] must have one row per edge ({e}), got a single number: a list holds one array per layer"),
    (lambda e: ["0.5"] * e, TypeError,
     "attention must be an array or tensor of real numbers, one row per edge; got dtype <U3"),
    (lambda e: [np.ones(e), np.ones(e + 1)], ValueError,
     "attention[1] must have one row per edge ({e}), got shape ({e1},)"),
])
def test_attention_of_the_wrong_kind_is_refused_naming_the_layer(sample, attention, error, message):
    sdata, _, graph = sample
    n_edges = graph.edge_index.shape[1]
    expected = message.format(e=n_edges, e1=n_edges + 1)
    with pytest.raises(error, match=f"^{re.escape(expected)}$"):
        colocalization(sdata, graph=graph, attention=attention(n_edges))
    assert "table" not in sdata.tables


def test_inplace_false_leaves_sdata_untouched(sample):
    sdata, _, graph = sample
    before = sdata.points["transcripts"].compute()
    colocalization(sdata, graph=graph, inplace=False)
    assert "table" not in sdata.tables
    pd.testing.assert_frame_equal(sdata.points["transcripts"].compute(), before)


@pytest.mark.parametrize("flag", ["include_controls", "per_cell", "inplace"])
def test_flags_must_be_bools(sample, flag):
    # A string is true whatever it says: inplace="False" wrote into the table.
    sdata, _, graph = sample
    with pytest.raises(TypeError, match=rf"^{flag} must be a bool \(True or False\), got 'False'$"):
        colocalization(sdata, graph=graph, **{flag: "False"})
    assert "table" not in sdata.tables
    result = colocalization(sdata, graph=graph, **{flag: np.False_})
    assert ("table" in sdata.tables) == (flag != "inplace")
    assert result.per_cell is None and result.params["include_controls"] is False


def test_within_all_pools_the_sample(sample):
    sdata, _, _ = sample
    pooled = colocalization(sdata, radius=1.0, within="all", inplace=False)
    assert pooled.params["within"] == "all"
    assert (pooled.table["n_cells"] == 1).all()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(), ValueError, "radius"),
        (dict(radius=RADIUS, within="nucleus"), ValueError, "within"),
        (dict(radius=RADIUS, attention=np.ones(3)), ValueError, "one row per edge"),
        (dict(radius=RADIUS, model=object(), attention=np.ones(3)), ValueError, "either"),
        (dict(radius=RADIUS, model=object()), TypeError, "model must be"),
        # failed with "'str' object has no attribute 'get'"
        (dict(graph="graph"), TypeError, r"^graph must be a torch_geometric Data \(stgraph.graph.transcript_graph\), got str$"),
        (dict(radius=RADIUS, points_key="molecules"), KeyError, r"no points element 'molecules'"),
        (dict(radius=RADIUS, seed=-1), ValueError, r"^seed must be an integer >= 0, got -1$"),
        (dict(radius=RADIUS, method="permutation", n_perms=5, seed=0.5), TypeError, r"^seed must be an integer, got 0.5$"),
        # Scoring settings are checked before the graph (no radius given here).
        (dict(prior_events=-1.0), ValueError, r"^prior_events must be"),
        (dict(method="exact"), ValueError, r"^method must be 'analytic' or 'permutation'"),
        (dict(method="permutation", n_perms=0), ValueError, r"^n_perms must be a positive integer"),
        (dict(max_edges=0), ValueError, r"^max_edges must be a positive integer, got 0$"),
        (dict(radius=RADIUS, max_edges=1e6), TypeError, r"^max_edges must be an integer, got 1000000.0$"),
    ],
)
def test_bad_arguments(sample, kwargs, error, match):
    sdata, _, _ = sample
    with pytest.raises(error, match=match):
        colocalization(sdata, inplace=False, **kwargs)
    with pytest.raises(TypeError, match="SpatialData"):
        colocalization(sdata.points["transcripts"], radius=RADIUS)


def test_plots_draw_the_matrix(sample):
    sdata, _, graph = sample
    result = colocalization(sdata, graph=graph)
    genes = list(result.genes[:5])
    ax = colocalization_heatmap(sdata, "clq", genes=genes)
    np.testing.assert_allclose(
        np.ma.filled(ax.images[0].get_array(), np.nan), result.matrix("clq", genes=genes).to_numpy()
    )
    assert [t.get_text() for t in ax.get_xticklabels()] == genes
    with pytest.raises(ValueError, match=r"genes: not in the data: \['zz'\]"):
        colocalization_heatmap(sdata, genes=[genes[0], "zz"])
    # An empty selection drew an empty 0 x 0 image (the result's matrix of no gene).
    for call in (lambda: colocalization_heatmap(sdata, genes=[]), lambda: result.matrix(genes=[])):
        with pytest.raises(ValueError, match="^genes is empty: name at least one, or pass None for all$"):
            call()
    # So did an fdr that leaves no pair.
    assert result.table["fdr"].min() > 0
    with pytest.raises(ValueError, match=r"^no pair of two genes has fdr <= 0.0: nothing to draw; pass a larger fdr, or genes$"):
        colocalization_heatmap(sdata, fdr=0.0)
    network = colocalization_network(result, fdr=1.0, top=3)
    assert len(network.collections) >= 2  # edges and nodes
    assert network.get_title() == "top 3 pairs, fdr <= 1.0"
    empty = colocalization_network(result, fdr=0.0)
    assert empty.get_title() == "no pair, fdr <= 0.0"
    # fdr=None keeps every pair (the title said "fdr <= None").
    assert colocalization_network(result, fdr=None, top=3).get_title() == "top 3 pairs"
    with pytest.raises(TypeError):
        colocalization_heatmap(result.table)


def test_plots_check_top_and_seed(sample):
    # top=-1 dropped the last pair silently, top=0 drew a network titled "no pair with
    # fdr <= 1.0" and made the heatmap say that genes=[] was empty.
    sdata, _, graph = sample
    result = colocalization(sdata, graph=graph, inplace=False)
    for plot in (colocalization_heatmap, lambda r, **kw: colocalization_network(r, fdr=1.0, **kw)):
        for top in (0, -1):
            with pytest.raises(ValueError, match=rf"^top must be a positive integer, got {top}$"):
                plot(result, top=top)
        with pytest.raises(TypeError, match=r"^top must be an integer, got 2.5$"):
            plot(result, top=2.5)
    with pytest.raises(ValueError, match=r"^seed must be an integer >= 0, got -1$"):
        colocalization_network(result, seed=-1)


def test_network_line_widths_are_never_negative(sample):
    # With fdr=1.0 pairs scoring below 0 are drawn: their widths were negative, and
    # when every score was, about -1e12 points (the figure filled with grey).
    sdata, _, graph = sample
    result = colocalization(sdata, graph=graph, inplace=False)
    table = result.table
    mixed = colocalization_network(result, fdr=1.0, top=len(table))
    scores = np.array(sorted(table.loc[table["gene_a"] != table["gene_b"], "score"]))
    assert scores[0] < 0 < scores[-1]
    widths = mixed.collections[0].get_linewidth()
    assert min(widths) == 0.5 and max(widths) == pytest.approx(4.5)
    negative = ColocalizationResult(table.assign(score=-1.0 - table["score"].abs()), result.genes)
    assert set(colocalization_network(negative, fdr=1.0).collections[0].get_linewidth()) == {0.5}


def test_graph_must_hold_the_transcripts_of_sdata(sample):
    sdata, _, graph = sample
    other = stgraph.graph.transcript_graph(stgraph.datasets.simulate(2, 4, seed=5)[0], RADIUS)
    shuffled = graph.clone()
    shuffled.gene = torch.roll(graph.gene, 1)
    renamed = graph.clone()
    renamed.gene_names = list(reversed(graph.gene_names))
    duplicated = graph.clone()
    duplicated.point_index = torch.zeros_like(graph.point_index)
    for bad, match in [
        (other, f"graph has {other.num_nodes} nodes but points 'transcripts' have {graph.num_nodes} rows"),
        (shuffled, "the graph's genes differ"),
        (renamed, "gene vocabulary differs"),
        (duplicated, "point_index is not a permutation"),
    ]:
        with pytest.raises(ValueError, match=match):
            colocalization(sdata, graph=bad)
    with pytest.raises(ValueError, match=f"radius=5.0 differs from the graph's radius {RADIUS}"):
        colocalization(sdata, graph=graph, radius=5.0)
    assert "table" not in sdata.tables
    # The graph's radius in float32 is the same radius (it was refused: 'differs by 1e-8').
    wider = stgraph.graph.transcript_graph(sdata, 2.1, within="cell")
    assert colocalization(sdata, graph=wider, radius=np.float32(2.1), inplace=False).table.equals(
        colocalization(sdata, graph=wider, inplace=False).table)
    # The same transcripts in spatial order (point_index a permutation) give the same pairs.
    spatial = stgraph.graph.transcript_graph(sdata, RADIUS, within="cell", order="spatial")
    pd.testing.assert_frame_equal(
        colocalization(sdata, graph=spatial, radius=RADIUS, inplace=False).table,
        colocalization(sdata, graph=graph, inplace=False).table,
    )


def test_within_cell_needs_transcripts_in_cells():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.random(60) * 10, "y": rng.random(60) * 10, "g": rng.choice(list("ABC"), 60)})
    sdata = stgraph.io.read_transcripts(frame, x="x", y="y", gene="g")
    with pytest.raises(ValueError, match="no transcript is assigned to a cell.*pass within='all'"):
        colocalization(sdata, radius=RADIUS)
    assert "table" not in sdata.tables
    pooled = colocalization(sdata, radius=RADIUS, within="all")
    assert len(pooled.table) == 9 and (pooled.table["n_cells"] == 1).all()


def test_key_added_cannot_replace_the_table_annotation_but_rerun_overwrites(sample):
    sdata, _, graph = sample
    colocalization(sdata, graph=graph)
    uns = sdata.tables["table"].uns
    annotation = dict(uns["spatialdata_attrs"])
    with pytest.raises(ValueError, match="key_added='spatialdata_attrs' would overwrite the table uns key"):
        colocalization(sdata, graph=graph, key_added="spatialdata_attrs")
    assert dict(uns["spatialdata_attrs"]) == annotation
    again = colocalization(sdata, radius=1.0)
    assert uns["colocalization_params"]["radius"] == 1.0
    pd.testing.assert_frame_equal(ColocalizationResult.from_uns(uns).table, again.table)


@pytest.mark.parametrize(
    "key, match",
    [
        # Stored as uns['run/1'], then sdata.write refused the whole table.
        ("run/1", r"^key_added='run/1' would write the table uns key 'run/1', which SpatialData cannot save: "
                  r"Name must contain only alphanumeric characters, underscores, dots and hyphens\.$"),
        ("__coloc", r"^key_added='__coloc' would write the table uns key '__coloc', which SpatialData cannot save: "
                    r"Name cannot start with '__'\.$"),
        # Beside the default result: SpatialData wants uns keys unique ignoring case.
        ("Colocalization", r"^key_added='Colocalization' would write a table uns key differing only in case from "
                           r"'colocalization'; SpatialData cannot save both, choose another name$"),
    ],
)
def test_key_added_must_be_a_key_spatialdata_can_save(sample, tmp_path, key, match):
    sdata, _, graph = sample
    colocalization(sdata, graph=graph)
    uns = sdata.tables["table"].uns
    before = sorted(uns)
    with pytest.raises(ValueError, match=match):
        colocalization(sdata, graph=graph, key_added=key)
    assert sorted(uns) == before
    colocalization(sdata, graph=graph, key_added="coloc.r-2")
    sdata.write(tmp_path / "sample.zarr")


def test_key_added_cannot_be_a_case_variant_of_the_annotation_of_a_new_table(sample):
    # The table made for the results holds spatialdata_attrs: sdata.write refused both.
    sdata, _, graph = sample
    with pytest.raises(ValueError, match=r"^key_added='SpatialData_attrs' would write a table uns key differing only "
                                         r"in case from 'spatialdata_attrs'; SpatialData cannot save both"):
        colocalization(sdata, graph=graph, key_added="SpatialData_attrs")
    assert "table" not in sdata.tables


def test_rerun_without_per_cell_removes_the_earlier_per_cell_table(sample):
    sdata, _, graph = sample
    first = colocalization(sdata, graph=graph, per_cell=True)
    uns = sdata.tables["table"].uns
    assert uns["colocalization_per_cell"] is first.per_cell and len(first.per_cell) > 0
    colocalization(sdata, radius=1.0)
    assert "colocalization_per_cell" not in uns
    assert ColocalizationResult.from_uns(uns).per_cell is None


def test_result_read_back_from_zarr_plots(sample, tmp_path):
    """After sdata.write / read_zarr the stored gene names are numpy StringDType."""
    import spatialdata

    sdata, _, graph = sample
    result = colocalization(sdata, graph=graph)
    sdata.write(tmp_path / "sample.zarr")
    back = spatialdata.read_zarr(tmp_path / "sample.zarr")
    read = ColocalizationResult.from_uns(back.tables["table"].uns)
    assert list(read.genes) == list(result.genes)
    ax = colocalization_heatmap(back, genes=list(result.genes[:3]))
    assert [t.get_text() for t in ax.get_yticklabels()] == list(result.genes[:3])


def _panel(sdata, keep=None, rename=None):
    """``sdata``'s transcripts of the genes in ``keep`` (default all), renamed by ``rename``."""
    frame = sdata.points["transcripts"].compute()
    gene = frame["gene"].astype(str)
    frame = frame[gene.isin(keep)] if keep is not None else frame
    frame = frame.assign(gene=frame["gene"].astype(str).replace(rename or {}))
    return stgraph.io.read_transcripts(frame.reset_index(drop=True), x="x", y="y", gene="gene", cell="cell_id",
                                       nucleus="nucleus_id", in_nucleus="in_nucleus")


def test_a_model_meets_another_gene_panel(sample):
    sdata, _, graph = sample
    model = stgraph.tl.pretrain(graph, d_model=16, n_layers=1, heads=2, steps=2, batch_size=4, progress=False).model
    names = list(graph.gene_names)
    fewer = _panel(sdata, keep=names[3:])
    # A pretrained model matches the genes by name: the genes it has that the data lack are fine.
    result = colocalization(fewer, model, radius=RADIUS, inplace=False)
    assert result.params["weight"] == "attention" and sorted(result.genes) == sorted(names[3:])
    subset = stgraph.graph.transcript_graph(fewer, RADIUS, within="cell")
    tokens = torch.tensor([names.index(g) for g in subset.gene_names])[subset.gene]
    renumbered = subset.clone()
    renumbered.gene, renumbered.gene_names = tokens, names
    expected = encoder_outputs(model.encoder, renumbered, attention=True).attention
    np.testing.assert_array_equal(encoder_outputs(model, subset, attention=True).attention, expected)
    # A bare encoder read their codes 0..8 as the first nine of its twelve genes.
    message = (
        "the graph has 9 genes and the TranscriptEncoder 12: an encoder has no gene names and reads the graph's "
        "gene codes as its tokens, so it needs the genes it was trained on, in that order; pass the pretrained "
        "model (tl.pretrain(...).model), which matches genes by name"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        colocalization(fewer, model.encoder, radius=RADIUS, inplace=False)
    # Genes the model does not know: named, with what to do.
    renamed = _panel(sdata, rename={names[0]: "NEW1", names[1]: "NEW2"})
    n_new = int(np.isin(graph.gene.numpy(), [0, 1]).sum())
    message = (
        f"genes unknown to the model (2 of the data's, {n_new} transcripts): ['NEW1', 'NEW2']; the model embeds "
        "only the 12 genes it was pretrained on: leave these genes' transcripts out of the data, or pretrain on "
        "this panel"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        colocalization(renamed, model, radius=RADIUS)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        stgraph.tl.domains(renamed, model, radius=RADIUS, n_domains=2)
    assert "table" not in renamed.tables and "domain" not in renamed.points["transcripts"].columns


def test_a_model_pretrained_at_another_radius_is_warned_of(sample):
    # Its attention, shaped by distance penalties of its own radius, was silently read on another graph.
    sdata, _, graph = sample
    result = stgraph.tl.pretrain(graph, d_model=16, n_layers=1, heads=2, steps=1, batch_size=4, progress=False)
    wider = stgraph.graph.transcript_graph(sdata, 2 * RADIUS, within="cell")
    for model in (result, result.model):
        with pytest.warns(UserWarning, match=other_radius_message(RADIUS, 2 * RADIUS)):
            colocalization(sdata, model, graph=wider, inplace=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        colocalization(sdata, result.model, graph=graph, inplace=False)
        # A bare encoder knows no radius; uniform weights use no model.
        colocalization(sdata, result.model.encoder, graph=wider, inplace=False)
        colocalization(sdata, graph=wider, inplace=False)


@pytest.mark.parametrize(
    "fdr, error, match",
    [
        ("0.05", TypeError, r"^fdr must be a real number, got str$"),
        (float("nan"), ValueError, r"^fdr must be a non-negative finite number, got nan$"),
        (-0.1, ValueError, r"^fdr must be a non-negative finite number, got -0.1$"),
        (5, ValueError, r"^fdr must be at most 1, got 5.0$"),
    ],
)
def test_fdr_thresholds_are_checked(sample, fdr, error, match):
    # A string failed inside pandas ("Invalid comparison between dtype=float64 and
    # str"); NaN, a negative threshold or None silently kept no pair, and 5 (meant
    # as 5 %) kept every one.
    sdata, _, graph = sample
    result = colocalization(sdata, graph=graph, inplace=False)
    calls = (
        lambda: result.significant(fdr),
        lambda: result.to_networkx(fdr=fdr),
        lambda: colocalization_heatmap(result, fdr=fdr),
        lambda: colocalization_heatmap(result, genes=list(result.genes[:3]), fdr=fdr),
        lambda: colocalization_network(result, fdr=fdr),
    )
    for call in calls:
        with pytest.raises(error, match=match):
            call()
    with pytest.raises(TypeError, match=r"^fdr must be a real number, got NoneType$"):
        result.significant(None)
    assert len(result.significant(1)) == len(result.table)


def test_heatmap_of_a_result_without_pairs_of_two_genes():
    # Told to "pass a larger fdr" when fdr was None and no two genes shared an edge.
    frame = pd.DataFrame({"x": [0.0, 5.0, 10.0], "y": 0.0, "gene": ["A", "B", "C"], "cell": "c1"})
    sdata = stgraph.io.read_transcripts(frame, x="x", y="y", gene="gene", cell="cell")
    with pytest.warns(UserWarning, match="pair table is empty"):
        result = colocalization(sdata, radius=1.0, inplace=False)
    with pytest.raises(ValueError, match=r"^the result holds no pair of two genes \(none share an edge\): nothing to draw$"):
        colocalization_heatmap(result)


def test_heatmap_of_many_genes_keeps_its_figure_and_labels_bounded():
    # 300 genes asked for a 77-inch figure (960 genes: 242 inches, 2.3 GB of pixels at
    # 100 dpi) and labels of 7 pt whatever the space each gene had.
    rng = np.random.default_rng(0)
    n_genes, n = 300, 5000
    edges = rng.integers(0, n, (2, 20000))
    result = score_pairs(edges, rng.integers(0, n_genes, n), gene_names=[f"g{i:03d}" for i in range(n_genes)])
    ax = colocalization_heatmap(result, genes=list(result.genes))
    np.testing.assert_allclose(ax.figure.get_size_inches(), [21.0, 20.0])
    assert ax.get_xticklabels()[0].get_fontsize() == pytest.approx(0.8 * 72 * 0.77 * 20 / 300)
    few = colocalization_heatmap(result, genes=list(result.genes[:5]))
    np.testing.assert_allclose(few.figure.get_size_inches(), [4.25, 3.25])
    assert few.get_yticklabels()[0].get_fontsize() == 7.0


def test_an_empty_pair_table_is_announced():
    # No edge at the radius, or only edges to controls or across cells, gave an empty
    # table without a word, easy to read as "nothing significant".
    frame = pd.DataFrame(
        {"x": [0.0, 0.5, 5.0, 10.0, 10.5], "y": 0.0, "gene": ["A", "NegPrb1", "B", "C", "A"],
         "cell": ["c1", "c1", "c1", "c1", "c2"]}
    )
    sdata = stgraph.io.read_transcripts(frame, x="x", y="y", gene="gene", cell="cell")
    message = (
        r"^the pair table is empty: no edge of the graph \(radius 1 µm\) joins two scored "
        r"transcripts in one cell; pass a larger radius$"
    )
    with pytest.warns(UserWarning, match=message):
        result = colocalization(sdata, radius=1.0)
    assert result.table.empty and result.params["n_tests"] == 9
    assert ColocalizationResult.from_uns(sdata.tables["table"].uns).table.empty
    with pytest.warns(UserWarning, match=r"joins two scored transcripts; pass a larger radius$"):
        colocalization(sdata, radius=0.2, within="all", inplace=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(colocalization(sdata, radius=1.0, within="all", inplace=False).table) == 2
        assert len(colocalization(sdata, radius=1.0, include_controls=True, inplace=False).table) == 2


def test_heatmap_colours_span_the_values_of_columns_without_a_centre(sample):
    # A p-value map was centred on 0 (colours from -max to max, the lower half unused).
    sdata, _, graph = sample
    result = colocalization(sdata, graph=graph, inplace=False)
    genes = list(result.genes[:6])
    values = result.matrix("pval", genes=genes).to_numpy()
    image = colocalization_heatmap(result, "pval", genes=genes).images[0]
    assert image.get_clim() == (np.nanmin(values), np.nanmax(values))
    assert image.get_cmap().name == "viridis"
    score = result.matrix("score", genes=genes).to_numpy()
    image = colocalization_heatmap(result, genes=genes, cmap="magma").images[0]
    assert image.get_clim() == (-np.nanmax(np.abs(score)), np.nanmax(np.abs(score)))
    assert image.get_cmap().name == "magma"
    bento = result.matrix("clq_bento", genes=genes).to_numpy()
    span = np.nanmax(np.abs(bento - 1.0))
    image = colocalization_heatmap(result, "clq_bento", genes=genes).images[0]
    assert image.get_clim() == (1.0 - span, 1.0 + span)
    assert image.get_cmap().name == "RdBu_r"


def test_colocalization_warnings_name_the_callers_line():
    # The permutation warning pointed inside stgraph (stacklevel counted from
    # stgraph.coloc), where Python's default filter hides it.
    pos, gene, cell = stacked_pair()
    frame = pd.DataFrame({"x": pos[:, 0], "y": pos[:, 1], "gene": gene.astype(str), "cell": cell.astype(str)})
    sdata = stgraph.io.read_transcripts(frame, x="x", y="y", gene="gene", cell="cell")
    with pytest.warns(UserWarning, match=r"^method='permutation': \d+ pair\(s\) exceed all 19 permutations") as caught:
        colocalization(sdata, radius=1.5, method="permutation", n_perms=19, inplace=False)
    assert [w.filename for w in caught] == [__file__]
    with pytest.warns(UserWarning, match=r"^the pair table is empty") as caught:
        colocalization(sdata, radius=1e-6, inplace=False)
    assert [w.filename for w in caught] == [__file__]


def test_network_thresholds_the_column_asked_for():
    # The network thresholded fdr only, while the table's significant() and
    # to_networkx() take any p-value or FDR column.
    rng = np.random.default_rng(0)
    n = 400
    result = score_pairs(rng.integers(0, n, (2, 3000)), rng.integers(0, 6, n), gene_names=list("abcdef"))
    table = result.table[result.table["gene_a"] != result.table["gene_b"]]

    def pairs(column, threshold):
        kept = table[table[column] <= threshold]
        return {frozenset(pair) for pair in zip(kept["gene_a"], kept["gene_b"])}

    assert len(pairs("pval", 0.5)) != len(pairs("fdr", 0.5))
    for column in ("pval", "binom_pval", "fdr", "binom_fdr"):
        ax = colocalization_network(result, fdr=0.5, column=column, top=100)
        expected = len(pairs(column, 0.5))
        assert ax.get_title() == (f"top {expected} pairs, {column} <= 0.5" if expected else f"no pair, {column} <= 0.5")
        plt.close("all")
    numeric = [c for c in result.table.columns if c not in ("gene_a", "gene_b")]
    for fdr in (0.5, None):  # checked even where None leaves it unused
        with pytest.raises(ValueError, match=re.escape(f"unknown value column 'p'; choose one of {numeric}")):
            colocalization_network(result, fdr=fdr, column="p")

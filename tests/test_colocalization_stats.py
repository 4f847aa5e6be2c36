"""Known answers of the model-free colocalization statistics (stgraph.coloc)."""
from __future__ import annotations

import itertools
import re
import warnings

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import cKDTree

from stgraph.coloc import PAIR_COLUMNS, ColocalizationResult, benjamini_hochberg, score_pairs
from stgraph.coloc._edges import cell_edges, row_normalised
from stgraph.coloc._null import analytic_moments
from stgraph.coloc._shared import shared_cells

A, B, C = 0, 1, 2


def symmetric(pairs) -> np.ndarray:
    pairs = np.asarray(pairs).T
    return np.concatenate([pairs, pairs[::-1]], axis=1)


def radius_edges(pos: np.ndarray, radius: float) -> np.ndarray:
    pairs = cKDTree(pos).query_pairs(radius, output_type="ndarray")
    return symmetric(pairs) if len(pairs) else np.zeros((2, 0), np.int64)


def row(result: ColocalizationResult, a: str, b: str) -> pd.Series:
    table = result.table
    match = table[(table["gene_a"] == a) & (table["gene_b"] == b)]
    assert len(match) == 1, (a, b)
    return match.iloc[0]


@pytest.fixture
def hand_graph():
    """One cell: A0 A1 B0 C0 C1 (nodes 0-4); edges A0-B0, A0-C0, A1-B0, C0-C1."""
    gene = np.array([A, A, B, C, C])
    edges = symmetric([(0, 2), (0, 3), (1, 2), (3, 4)])
    return edges, gene


def test_clq_by_hand(hand_graph):
    edges, gene = hand_graph
    result = score_pairs(edges, gene, gene_names=["A", "B", "C"])
    # Leslie-Kronenfeld: C_{A->B} = 1/2 (A0) + 1/1 (A1); (1.5 / 2) / (1 / 4) = 3
    assert row(result, "A", "B")["clq"] == pytest.approx(3.0)
    # C_{B->A} = 2/2; (1 / 1) / (2 / 4) = 2
    assert row(result, "B", "A")["clq"] == pytest.approx(2.0)
    # C_{C->C} = 1/2 + 1/1; (1.5 / 2) / ((2 - 1) / 4) = 3
    assert row(result, "C", "C")["clq"] == pytest.approx(3.0)
    # C_{A->C} = 1/2; (0.5 / 2) / (2 / 4) = 0.5
    assert row(result, "A", "C")["clq"] == pytest.approx(0.5)
    # Bento: both A have a B neighbour, (2 / 2) / (1 / 5) = 5; one A has a C one: (1/2) / (2/5)
    assert row(result, "A", "B")["clq_bento"] == pytest.approx(5.0)
    assert row(result, "A", "C")["clq_bento"] == pytest.approx(1.25)
    # Binomial: 4 proximal pairs of C(5, 2) = 10 -> p = 0.4
    assert row(result, "A", "B")["binom_pval"] == pytest.approx(0.4**2)  # 2 of 2 trials
    assert row(result, "C", "C")["binom_pval"] == pytest.approx(0.4)  # 1 of 1 trial
    assert row(result, "A", "C")["binom_pval"] == pytest.approx(1 - 0.6**4)  # >= 1 of 4
    assert row(result, "A", "C")["binom_pval"] == row(result, "C", "A")["binom_pval"]
    # The uniform-weight mass is the L-K numerator and its expectation the L-K denominator.
    assert row(result, "A", "B")["mass"] == pytest.approx(1.5)
    assert row(result, "A", "B")["expected"] == pytest.approx(0.5)
    assert set(result.table.columns) == set(PAIR_COLUMNS)
    # Only pairs joined by an edge are listed: A-B, B-A, A-C, C-A, C-C.
    assert len(result.table) == 5


def test_pooled_clq_is_ratio_of_sums_over_cells(hand_graph):
    edges, gene = hand_graph
    # Cell 1 = the hand graph; cell 2 = A, B, B with A joined to one B only.
    gene2 = np.concatenate([gene, [A, B, B]])
    edges2 = np.concatenate([edges, symmetric([(5, 6)])], axis=1)
    cell = np.array([0] * 5 + [1] * 3)
    result = score_pairs(edges2, gene2, cell, gene_names=["A", "B", "C"], per_cell=True)
    # Numerators 1.5 + 1, expectations 2 * 1 / 4 + 1 * 2 / 2
    assert row(result, "A", "B")["clq"] == pytest.approx(2.5 / 1.5)
    per_cell = result.per_cell.set_index(["cell", "gene_a", "gene_b"])
    assert per_cell.loc[("0", "A", "B"), "clq"] == pytest.approx(3.0)
    assert per_cell.loc[("1", "A", "B"), "clq"] == pytest.approx(1.0)
    assert row(result, "A", "B")["n_cells"] == 2
    # Pooled binomial: k = 2 + 1 of 2 + 2 trials, p = (2 * 0.4 + 2 * 1/3) / 4
    p_mean = (2 * 0.4 + 2 * (1 / 3)) / 4
    expected = sum(
        p_mean**k * (1 - p_mean) ** (4 - k) * len(list(itertools.combinations(range(4), k)))
        for k in (3, 4)
    )
    assert row(result, "A", "B")["binom_pval"] == pytest.approx(expected)


def test_edges_across_cells_and_unassigned_are_ignored(hand_graph):
    edges, gene = hand_graph
    gene2 = np.concatenate([gene, [B, B]])
    cell = np.array([0] * 5 + [1, -1])
    extra = symmetric([(0, 5), (1, 6), (0, 0)])  # to another cell, to unassigned, self-loop
    base = score_pairs(edges, gene, gene_names=["A", "B", "C"])
    noisy = score_pairs(
        np.concatenate([edges, extra], axis=1), gene2, cell, gene_names=["A", "B", "C"]
    )
    for column in ("clq", "mass", "expected", "binom_pval"):
        np.testing.assert_allclose(noisy.table[column], base.table[column])


def test_repeated_edges_count_once(hand_graph):
    edges, gene = hand_graph
    base = score_pairs(edges, gene, gene_names=["A", "B", "C"])
    # A0 -> B0 listed three times, C0 -> C1 twice: the neighbourhoods are the same sets.
    repeated = np.concatenate([edges, [[2, 2, 4], [0, 0, 3]]], axis=1)
    again = score_pairs(repeated, gene, gene_names=["A", "B", "C"])
    for column in ("clq", "clq_bento", "binom_pval", "mass", "expected", "pval"):
        np.testing.assert_allclose(again.table[column], base.table[column], rtol=1e-12)
    assert row(again, "A", "B")["clq"] == pytest.approx(3.0)
    weights = row_normalised(cell_edges(repeated, gene))
    np.testing.assert_allclose(np.bincount(repeated[1], weights=weights), 1.0)
    np.testing.assert_array_equal(weights[-3:], 0.0)


def test_analytic_moments_match_exhaustive_relabelling():
    rng = np.random.default_rng(1)
    gene = np.array([0, 0, 1, 2, 1, 0, 1, 1, 2, 0, 2])
    cell = np.array([0] * 6 + [1] * 5)
    directed = [
        (start + j, start + i)
        for start, size in ((0, 6), (6, 5))
        for i in range(size)
        for j in range(size)
        if i != j and rng.random() < 0.6
    ]
    edge_index = np.array(directed).T
    weight = rng.random(edge_index.shape[1])
    gene_a, gene_b = np.repeat(np.arange(3), 3), np.tile(np.arange(3), 3)
    moments = analytic_moments(cell_edges(edge_index, gene, cell, weight), weight, gene_a, gene_b)

    def mass(labels):
        code = labels[edge_index[1]] * 3 + labels[edge_index[0]]
        return np.bincount(code, weights=weight, minlength=9)

    # Every distinct relabelling of each cell is equally likely under a uniform permutation.
    masses = np.array([
        mass(np.array(first + second))
        for first in set(itertools.permutations(gene[:6]))
        for second in set(itertools.permutations(gene[6:]))
    ])
    np.testing.assert_allclose(moments.mean, masses.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(moments.var, masses.var(axis=0), rtol=1e-10)


@pytest.mark.parametrize("n, n_a", [(4, 2), (6, 3), (10, 4)])
def test_mass_that_relabelling_cannot_change_has_p_one(n, n_a):
    # Every transcript neighbours every other (duplicate points, a small cell): each
    # relabelling gives the same masses. The round-off of E[M^2] - E[M]^2 (about 1e-16)
    # gave some pairs p = 0.5 where the permutation null gives 1.
    src, dst = np.nonzero(~np.eye(n, dtype=bool))
    gene = np.repeat([A, B], [n_a, n - n_a])
    analytic = score_pairs(np.stack([src, dst]), gene)
    permuted = score_pairs(np.stack([src, dst]), gene, method="permutation", n_perms=20)
    assert analytic.table["pval"].tolist() == [1.0] * 4 == permuted.table["pval"].tolist()
    assert analytic.table["z"].tolist() == [0.0] * 4
    np.testing.assert_allclose(analytic.table["mass"], analytic.table["expected"], rtol=1e-12)


def uniform_cells(seed: int, n_genes: int = 8, n_cells: int = 4, per_cell: int = 600):
    rng = np.random.default_rng(seed)
    pos = np.concatenate([rng.uniform(0, 20, (per_cell, 2)) + [30 * c, 0] for c in range(n_cells)])
    gene = rng.integers(0, n_genes, pos.shape[0])
    cell = np.repeat(np.arange(n_cells), per_cell)
    return pos, gene, cell


def stacked_pair():
    """:func:`uniform_cells` plus 60 molecules of gene 8 each on top of one of gene 0."""
    pos, gene, cell = uniform_cells(0)
    rng = np.random.default_rng(1)
    partners = np.flatnonzero(gene == 0)[:60]
    pos = np.concatenate([pos, pos[partners] + rng.normal(0, 0.05, (partners.size, 2))])
    gene = np.concatenate([gene, np.full(partners.size, 8)])
    cell = np.concatenate([cell, cell[partners]])
    return pos, gene, cell


def test_stacked_pair_is_strongly_colocalized():
    pos, gene, cell = stacked_pair()
    result = score_pairs(radius_edges(pos, 1.5), gene, cell)
    top = result.table.sort_values("score", ascending=False).iloc[0]
    assert {top["gene_a"], top["gene_b"]} == {"0", "8"}
    pair = row(result, "8", "0")
    assert pair["fdr"] < 1e-4 and pair["binom_fdr"] < 1e-4
    # one extra 0 among ~11 neighbours of each 8 (1.5 / µm² x pi 1.5²): (1 + 11/8) / (11/8) ~ 1.7
    assert pair["clq"] > 1.5
    others = result.table[(result.table["gene_a"] != "8") & (result.table["gene_b"] != "8")]
    assert (others["fdr"] > 0.05).all()


def test_permutations_too_few_for_the_fdr_warn_with_the_number_needed():
    # A pair that beats every permutation got fdr 1 in silence: over n_tests pairs the
    # smallest p-value, 1 / (n_perms + 1), is too large for BH (0 of 921,600 CosMx pairs
    # passed FDR 5 % with 200 permutations, 7,052 of them beating all 200).
    pos, gene, cell = stacked_pair()
    edges = radius_edges(pos, 1.5)
    with pytest.warns(UserWarning, match=r"method='permutation': (\d+) pair\(s\) exceed all 19 permutations") as caught:
        few = score_pairs(edges, gene, cell, method="permutation", n_perms=19, seed=0)
    table = few.table
    beaten = table[np.isclose(table["pval"], 1 / 20)]
    assert {("0", "8"), ("8", "0")} <= set(zip(beaten["gene_a"], beaten["gene_b"]))
    assert (beaten["fdr"] > 0.05).all() and few.params["n_tests"] == 81
    assert caught[0].filename == __file__  # the caller's line, not stgraph's
    message = str(caught[0].message)
    assert f"{len(beaten)} pair(s)" in message and f"fdr is {beaten['fdr'].min():.3g}" in message
    needed = int(re.search(r"to at least ([\d,]+)", message).group(1).replace(",", ""))
    assert 81 / ((needed + 1) * len(beaten)) <= 0.05 < 81 / (needed * len(beaten))
    # "at least": with more permutations fewer pairs may beat them all, so follow the advice
    # until it stops; the stacked pair then reaches the FDR it asks for.
    for _ in range(3):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            enough = score_pairs(edges, gene, cell, method="permutation", n_perms=needed, seed=0)
        if not caught:
            break
        needed = int(re.search(r"to at least ([\d,]+)", str(caught[0].message)).group(1).replace(",", ""))
    assert not caught
    assert row(enough, "8", "0")["fdr"] <= 0.05 and row(enough, "0", "8")["fdr"] <= 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the analytic null has no floor
        score_pairs(edges, gene, cell)


def test_fdr_controls_false_positives_on_null_simulations():
    n_runs, q = 30, 0.1
    runs_with_discovery, pvals = 0, []
    for seed in range(n_runs):
        pos, gene, cell = uniform_cells(seed)
        result = score_pairs(radius_edges(pos, 1.2), gene, cell)
        runs_with_discovery += bool((result.table["fdr"] <= q).any())
        pvals.append(result.table["pval"].to_numpy())
    # Under the complete null FDR = P(any discovery) <= q; binomial(30, 0.1) <= 7 w.p. > 0.97
    assert runs_with_discovery <= 7
    pvals = np.concatenate(pvals)
    assert 0.02 <= (pvals <= 0.05).mean() <= 0.07
    assert 0.06 <= (pvals <= 0.1).mean() <= 0.13


def test_permutation_null_agrees_with_analytic():
    pos, gene, cell = uniform_cells(3, n_genes=5, per_cell=300)
    edges = radius_edges(pos, 1.5)
    weight = np.random.default_rng(0).random(edges.shape[1])
    analytic = score_pairs(edges, gene, cell, weight)
    permuted = score_pairs(edges, gene, cell, weight, method="permutation", n_perms=400, seed=0)
    np.testing.assert_allclose(permuted.table["expected"], analytic.table["expected"], rtol=0.02)
    assert np.abs(permuted.table["pval"] - analytic.table["pval"]).max() < 0.12
    np.testing.assert_array_equal(permuted.table["mass"], analytic.table["mass"])


def test_deterministic_and_seeded():
    pos, gene, cell = uniform_cells(4, n_genes=4, per_cell=200)
    edges = radius_edges(pos, 1.5)
    first = score_pairs(edges, gene, cell, method="permutation", n_perms=50, seed=7)
    again = score_pairs(edges, gene, cell, method="permutation", n_perms=50, seed=7)
    other = score_pairs(edges, gene, cell, method="permutation", n_perms=50, seed=8)
    pd.testing.assert_frame_equal(first.table, again.table)
    assert not np.array_equal(first.table["pval"], other.table["pval"])
    analytic = score_pairs(edges, gene, cell)
    pd.testing.assert_frame_equal(analytic.table, score_pairs(edges, gene, cell).table)


def test_permutation_null_does_not_depend_on_how_the_cells_are_numbered():
    # The shuffles drew their uniform numbers cell by cell in code order, so the same cells
    # numbered otherwise (cell_id categories in another order) got other p-values: up to
    # 0.37 apart on the MERFISH sample with 50 permutations.
    pos, gene, cell = uniform_cells(4, n_genes=4, per_cell=200)
    edges = radius_edges(pos, 1.5)
    first = score_pairs(edges, gene, cell, method="permutation", n_perms=50, seed=7)
    renumbered = score_pairs(edges, gene, np.array([2, 0, 3, 1])[cell], method="permutation", n_perms=50, seed=7)
    pd.testing.assert_frame_equal(first.table, renumbered.table)
    assert first.table["pval"].min() < 0.5 < first.table["pval"].max()


def test_empty_and_single_gene_inputs():
    empty = score_pairs(np.zeros((2, 0), np.int64), np.zeros(0, np.int64))
    assert list(empty.table.columns) == list(PAIR_COLUMNS) and len(empty.table) == 0
    no_edges = score_pairs(np.zeros((2, 0), np.int64), np.array([0, 1, 1]), gene_names=["a", "b"])
    assert len(no_edges.table) == 0
    assert no_edges.matrix().shape == (0, 0)
    assert no_edges.to_networkx().number_of_edges() == 0
    # A single gene: relabelling changes nothing, so the mass is its expectation.
    pos = np.random.default_rng(0).uniform(0, 10, (50, 2))
    edges = radius_edges(pos, 2.0)
    single = score_pairs(edges, np.zeros(50, np.int64), gene_names=["only"])
    assert len(single.table) == 1
    only = single.table.iloc[0]
    assert only["score"] == pytest.approx(0.0) and only["pval"] == 1.0 and only["z"] == 0.0
    # L-K: (C / N) / ((N - 1) / (N - 1)) with C the transcripts that have a neighbour.
    n_connected = np.unique(edges[1]).size
    assert n_connected < 50  # the check is only meaningful with an isolated transcript
    assert only["clq"] == pytest.approx(n_connected / 50)


def test_many_genes_do_not_allocate_pairs_squared():
    # 200,000 genes -> 4e10 possible ordered pairs; only the observed ones are stored.
    pos, gene, cell = uniform_cells(5, n_genes=6, per_cell=200)
    gene = gene * 33_333
    result = score_pairs(radius_edges(pos, 1.5), gene, cell, gene_names=[f"g{i}" for i in range(200_000)])
    assert len(result.table) <= 36
    assert result.params["n_tests"] == 36
    assert result.matrix(as_sparse=True).shape == (6, 6)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(edge_index=np.zeros((3, 2), np.int64)), ValueError),
        (dict(edge_index=np.array([[0], [9]])), ValueError),
        (dict(edge_index=np.zeros((2, 1))), TypeError),
        (dict(gene=np.array([0.5, 1.0])), TypeError),
        (dict(cell=np.array([0])), ValueError),
        (dict(weight=np.array([-1.0])), ValueError),
        (dict(weight=np.array([1.0, 2.0])), ValueError),
        (dict(method="bootstrap"), ValueError),
        (dict(method="permutation", n_perms=0), ValueError),
        (dict(method="permutation", n_perms=5, seed=-1), ValueError),
        (dict(seed="0"), TypeError),
        (dict(gene_names=["x", "x"]), ValueError),
    ],
)
def test_bad_input_raises(kwargs, error):
    args = dict(edge_index=np.array([[0], [1]]), gene=np.array([0, 1]))
    args.update(kwargs)
    with pytest.raises(error):
        score_pairs(args.pop("edge_index"), args.pop("gene"), **args)


def test_result_matrix_graph_and_uns_round_trip(hand_graph):
    edges, gene = hand_graph
    result = score_pairs(edges, gene, gene_names=["A", "B", "C"])
    clq = result.matrix("clq")
    assert list(clq.index) == ["A", "B", "C"]
    assert clq.loc["A", "B"] == pytest.approx(3.0) and np.isnan(clq.loc["B", "C"])
    assert result.matrix("clq", as_sparse=True)[0, 1] == pytest.approx(3.0)
    graph = result.to_networkx(fdr=None)
    assert isinstance(graph, nx.DiGraph)
    assert set(graph.edges) == {("A", "B"), ("B", "A"), ("A", "C"), ("C", "A")}
    assert graph.edges["A", "B"]["clq"] == pytest.approx(3.0)
    assert ("C", "C") in result.to_networkx(fdr=None, self_loops=True).edges
    uns: dict = {}
    result.to_uns(uns, "coloc")
    back = ColocalizationResult.from_uns(uns, "coloc")
    pd.testing.assert_frame_equal(back.table, result.table)
    assert list(back.genes) == ["A", "B", "C"]
    with pytest.raises(ValueError, match="unknown value column"):
        result.matrix("nope")
    # A string was read letter by letter ("AB": genes A and B) and a repeated gene failed
    # inside pandas ("cannot reindex on an axis with duplicate labels").
    with pytest.raises(TypeError, match=r"^genes must be a list of names, got the string 'AB': pass \['AB'\]$"):
        result.matrix("clq", genes="AB")
    with pytest.raises(ValueError, match=r"^genes names some genes more than once: \['A'\]$"):
        result.matrix("clq", genes=["A", "B", "A"])
    with pytest.raises(ValueError, match=r"^genes: not in the data: \['Z'\]$"):
        result.matrix("clq", genes=["A", "Z"])
    assert result.matrix("clq", genes=["C", "A"]).loc["A", "C"] == pytest.approx(clq.loc["A", "C"])
    with pytest.raises(KeyError):
        ColocalizationResult.from_uns({}, "coloc")


def test_flags_must_be_bools(hand_graph):
    # Strings are true whatever they say: as_sparse="False" returned a sparse matrix,
    # self_loops="False" kept the self-loops and per_cell="False" built the per-cell table.
    edges, gene = hand_graph
    result = score_pairs(edges, gene, gene_names=["A", "B", "C"])
    for call, flag in (
        (lambda value: score_pairs(edges, gene, per_cell=value), "per_cell"),
        (lambda value: result.matrix("clq", as_sparse=value), "as_sparse"),
        (lambda value: result.to_networkx(fdr=None, self_loops=value), "self_loops"),
    ):
        with pytest.raises(TypeError, match=rf"^{flag} must be a bool \(True or False\), got 'False'$"):
            call("False")
    assert isinstance(result.matrix("clq", as_sparse=np.False_), pd.DataFrame)
    assert ("C", "C") not in result.to_networkx(fdr=None, self_loops=np.False_).edges
    assert score_pairs(edges, gene, per_cell=np.False_).per_cell is None


def test_benjamini_hochberg_known_values():
    q = benjamini_hochberg([0.01, 0.04, 0.03, 0.5])
    # sorted 0.01, 0.03, 0.04, 0.5 scale to 0.04, 0.06, 0.053, 0.5; running minimum from the top
    np.testing.assert_allclose(q, [0.04, 0.16 / 3, 0.16 / 3, 0.5])
    # Untested hypotheses count as p = 1 in m.
    np.testing.assert_allclose(benjamini_hochberg([0.01], n_tests=10), [0.1])
    with pytest.raises(ValueError):
        benjamini_hochberg([0.2, 1.5])
    # A fractional count of hypotheses is refused, not truncated (10.9 became 10).
    with pytest.raises(TypeError, match="n_tests"):
        benjamini_hochberg([0.01], n_tests=10.9)


def test_benjamini_hochberg_matches_scipy_with_ties_and_untested_hypotheses():
    rng = np.random.default_rng(5)
    for _ in range(50):
        pval = np.round(rng.uniform(0, 1, rng.integers(1, 30)) ** 3, 2)  # ties and zeros
        np.testing.assert_allclose(benjamini_hochberg(pval), stats.false_discovery_control(pval), rtol=1e-12)
        n_untested = int(rng.integers(1, 10))
        padded = np.concatenate([pval, np.ones(n_untested)])
        np.testing.assert_allclose(
            benjamini_hochberg(pval, pval.size + n_untested),
            stats.false_discovery_control(padded)[: pval.size],
            rtol=1e-12,
        )


def direct_pair_statistics(edge_index, gene, cell, n_genes):
    """Per-cell CLQs and binomial p-values (scipy.stats.binomtest) by looping over
    transcripts, and their pooled sums, straight from the definitions."""
    per_cell, pooled = {}, {}
    for c in np.unique(cell[cell >= 0]):
        members = np.flatnonzero(cell == c)
        n = members.size
        edges = [(j, i) for j, i in edge_index.T if cell[j] == c and cell[i] == c and i != j]
        neighbours = {i: [j for j, t in edges if t == i] for i in members}
        # Proximal: unordered pairs joined by an edge in either direction.
        proximal = {frozenset((int(j), int(i))) for j, i in edges}
        p = len(proximal) / (n * (n - 1) / 2)
        for a, b in itertools.product(range(n_genes), repeat=2):
            n_a, n_b = (gene[members] == a).sum(), (gene[members] == b).sum()
            if not (n_a and n_b):
                continue
            of_a = [i for i in members if gene[i] == a]
            share = sum(np.mean(gene[neighbours[i]] == b) for i in of_a if neighbours[i])
            with_b = sum(any(gene[j] == b for j in neighbours[i]) for i in of_a)
            k = sum(sorted(gene[list(pair)]) == sorted((a, b)) for pair in proximal)
            trials = n_a * (n_a - 1) // 2 if a == b else n_a * n_b
            sums = np.array([share, n_a * (n_b - (a == b)) / (n - 1), with_b, n_a * n_b / n, k, trials, trials * p])
            pooled[a, b] = pooled.get((a, b), 0) + sums
            per_cell[c, a, b] = (
                sums[0] / sums[1] if sums[1] else 0.0,
                sums[2] / sums[3],
                stats.binomtest(int(k), trials, p, alternative="greater").pvalue if trials else 1.0,
            )
    return per_cell, pooled


@pytest.mark.parametrize("one_way", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_quotients_and_binomial_test_match_a_direct_computation(seed, one_way):
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, 6, (60, 2))
    pos[1] = pos[0]  # a duplicated molecule
    gene = rng.integers(0, 3, 60)
    gene[:3] = -1  # left out
    cell = rng.integers(-1, 3, 60)
    edge_index = radius_edges(pos, 1.3)
    if one_way:
        # As a k-nearest-neighbour graph is: some pairs joined one way only, some edges repeated.
        kept = rng.random(edge_index.shape[1]) < 0.6
        edge_index = np.concatenate([edge_index[:, kept], edge_index[:, :5]], axis=1)
    result = score_pairs(edge_index, gene, cell, per_cell=True)
    per_cell, pooled = direct_pair_statistics(edge_index, gene, np.where(gene >= 0, cell, -1), 3)
    for r in result.table.itertuples():
        share, expect_l, with_b, expect_b, k, trials, p_sum = pooled[int(r.gene_a), int(r.gene_b)]
        assert r.clq == pytest.approx(share / expect_l, rel=1e-12)
        assert r.clq_bento == pytest.approx(with_b / expect_b, rel=1e-12)
        assert r.binom_pval == pytest.approx(stats.binom.sf(np.ceil(k) - 1, trials, p_sum / trials), rel=1e-12)
    for r in result.per_cell.itertuples():
        expected = per_cell[int(r.cell), int(r.gene_a), int(r.gene_b)]
        np.testing.assert_allclose([r.clq, r.clq_bento, r.binom_pval], expected, rtol=1e-12)
    assert len(result.per_cell) > 10
    # The binomial test is symmetric in the pair: BH over the 6 unordered pairs of 3 genes
    # (those never proximal count as p = 1), each listed order getting its pair's q-value.
    table = result.table.assign(pair=[frozenset((a, b)) for a, b in zip(result.table.gene_a, result.table.gene_b)])
    unordered = table.drop_duplicates("pair")
    assert result.params["n_binom_tests"] == 6
    padded = np.concatenate([unordered["binom_pval"], np.ones(6 - len(unordered))])
    expected_q = dict(zip(unordered["pair"], stats.false_discovery_control(padded)[: len(unordered)]))
    np.testing.assert_allclose(table["binom_fdr"], table["pair"].map(expected_q).astype(float), rtol=1e-12)


@pytest.mark.parametrize("chunk_rows", [1, 7, 1 << 22])
def test_shared_cells_lists_every_cell_holding_both_genes(chunk_rows):
    rng = np.random.default_rng(5)
    n_cells, n_genes = 40, 15
    # genes present in few to all cells, so that either gene of a pair drives the walk
    presence = rng.random((n_cells, n_genes)) < np.linspace(0.05, 1.0, n_genes)
    dense = np.where(presence, rng.integers(1, 6, (n_cells, n_genes)), 0)
    dense[7] = 0  # a cell without molecules
    cell, gene = np.nonzero(dense)
    pairs = np.array(list(itertools.product(range(n_genes), repeat=2)))
    pairs = pairs[rng.permutation(len(pairs))[:120]]
    gene_a, gene_b = pairs.T
    chunks = list(shared_cells(gene_a, gene_b, (cell, gene, dense[cell, gene]), n_genes, chunk_rows=chunk_rows))
    got = [row for c in chunks for row in zip(c.pair, c.cell, c.count_a, c.count_b)]
    expected = [
        (p, k, dense[k, a], dense[k, b])
        for p, (a, b) in enumerate(pairs)
        for k in range(n_cells)
        if dense[k, a] and dense[k, b]
    ]
    assert got == expected
    assert len(expected) > 300
    if chunk_rows == 1:
        # no chunk but a single pair's goes over the bound
        assert max(np.unique(c.pair).size for c in chunks) == 1


def test_score_shrinks_pairs_seen_on_few_edges():
    pos, gene, cell = uniform_cells(0)
    rng = np.random.default_rng(1)
    partners = np.flatnonzero(gene == 0)[:60]
    # gene 8 sits on 60 molecules of gene 0; genes 9 and 10 meet once, in cell 0
    pos = np.concatenate(
        [pos, pos[partners] + rng.normal(0, 0.05, (partners.size, 2)), [[1.0, 1.0], [1.05, 1.0]]]
    )
    gene = np.concatenate([gene, np.full(partners.size, 8), [9, 10]])
    cell = np.concatenate([cell, cell[partners], [0, 0]])
    edges = radius_edges(pos, 1.5)
    raw = score_pairs(edges, gene, cell, prior_events=0.0)
    shrunk = score_pairs(edges, gene, cell)
    # Unshrunk, the single 9-10 encounter has the most extreme ratio.
    np.testing.assert_allclose(raw.table["score"], np.log2(raw.table["mass"] / raw.table["expected"]))
    top = raw.table.sort_values("score", ascending=False).iloc[0]
    assert {top["gene_a"], top["gene_b"]} == {"9", "10"}
    # Shrunk: log2((M / phi + 16) / (E / phi + 16)), phi = Var / E of the pair's null.
    table = shrunk.table
    edges_ = cell_edges(edges, gene, cell, None)
    codes = table["gene_a"].astype(int).to_numpy(), table["gene_b"].astype(int).to_numpy()
    null = analytic_moments(edges_, row_normalised(edges_), *codes)
    phi = null.var / null.mean
    np.testing.assert_allclose(
        table["score"], np.log2((table["mass"] / phi + 16) / (null.mean / phi + 16)), rtol=1e-10
    )
    # Same sign, smaller magnitude, and the stacked pair now ranks first.
    assert (np.sign(table["score"]) == np.sign(raw.table["score"])).all()
    assert (np.abs(table["score"]) <= np.abs(raw.table["score"]) + 1e-12).all()
    top = table.sort_values("score", ascending=False).iloc[0]
    assert {top["gene_a"], top["gene_b"]} == {"0", "8"}
    with pytest.raises(ValueError, match="prior_events"):
        score_pairs(edges, gene, cell, prior_events=-1.0)
    # A bool was taken for 1 event and a string failed inside numpy (ufunc 'isfinite' not supported).
    for value, kind in ((True, "bool"), ("16", "str")):
        with pytest.raises(TypeError, match=f"^prior_events must be a real number, got {kind}$"):
            score_pairs(edges, gene, cell, prior_events=value)

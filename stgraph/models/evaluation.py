r"""Held-out evaluation of masked gene modelling and its two baselines.

Protocol. The evaluated transcripts (the non-control transcripts of the held-out
cells) are split at random into ``K = ceil(1 / rate)`` near-equal groups
(:func:`evaluation_groups`). In pass ``k`` every transcript of group ``k`` is
replaced by ``[MASK]`` and predicted from the rest, so each transcript is scored
exactly once, with about ``rate`` of its neighbours hidden, as in training.
Control transcripts are in no group: never hidden, context only, as in training.

Scores per predictor: top-1 accuracy and mean cross-entropy (nats) of the true gene.

- Model: the gene logits of :class:`~stgraph.models.MaskedGeneModel`.
- Gene frequency: :math:`\pi_g = (n_g + 1) / \sum_{g'} (n_{g'} + 1)` over the
  non-control genes, ``n_g`` the training count; predicts :math:`\arg\max \pi`.
- Radius neighbours: with :math:`c_{ig}` the number of *visible* (unmasked)
  neighbours of ``i`` within the graph radius that have gene ``g`` and
  :math:`n_i = \sum_g c_{ig}`, the smoothed histogram
  :math:`p_i(g) = (c_{ig} + \beta \pi_g) / (n_i + \beta)` (a Dirichlet prior of
  strength :math:`\beta` around :math:`\pi`) gives the cross-entropy, with
  :math:`\beta` chosen on the training cells (:func:`fit_neighbour_strength`);
  the top-1 prediction is the most frequent visible neighbour gene, ties broken by
  :math:`\pi` (:math:`\arg\max_g c_{ig} + \pi_g / 2`), and :math:`\arg\max \pi` when
  no neighbour is visible.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from .._validation import check_int, check_real, check_seed
from ..data.batching import collate_units, tile_units
from ..graph._fields import check_graph_fields
from .mgm import MaskedGeneModel, warn_other_radius
from .trainer import resolve_device


@dataclasses.dataclass
class TokenScores:
    """Per-transcript scores of one predictor."""

    #: ``[M]`` log-probability given to the true gene.
    log_prob: Tensor
    #: ``[M]`` whether the top-1 prediction is the true gene.
    correct: Tensor

    @property
    def accuracy(self) -> float:
        return float(self.correct.double().mean())

    @property
    def cross_entropy(self) -> float:
        return float(-self.log_prob.double().mean())


def evaluation_groups(n: int, rate: float = 0.15, seed: int = 0) -> Tensor:
    """Random assignment of ``n`` tokens to ``ceil(1 / rate)`` near-equal mask groups."""
    if not 0 < rate <= 1:
        raise ValueError(f"rate must be in (0, 1], got {rate}")
    n_groups = math.ceil(1 / rate)
    groups = np.empty(n, dtype=np.int64)
    groups[np.random.default_rng(seed).permutation(n)] = np.arange(n) % n_groups
    return torch.from_numpy(groups)


def gene_prior(gene: Tensor, is_control_gene: Tensor) -> Tensor:
    """Add-one smoothed gene frequencies :math:`\\pi` over the non-control genes (0 for controls)."""
    counts = torch.bincount(gene, minlength=is_control_gene.numel()).double() + 1.0
    counts[is_control_gene] = 0.0
    return counts / counts.sum()


@torch.no_grad()
def score_model(
    model: MaskedGeneModel,
    units: Sequence[Data],
    groups: Tensor,
    evaluated: Tensor,
    *,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
) -> TokenScores:
    """Score the model on the ``evaluated`` nodes of the graph that ``units`` cover.

    Parameters
    ----------
    model
        Masked gene model.
    units
        Units of the graph whose core nodes include every evaluated node once.
    groups
        ``[N]`` mask group of every node of the graph (:func:`evaluation_groups`);
        ``-1`` for nodes that are never hidden.
    evaluated
        ``[N]`` bool, the nodes to score.
    batch_size
        Units per forward pass.
    device
        Where to run the model.

    Returns
    -------
    Scores of the evaluated nodes, in node order. ``model`` is back on its device
    and in its training mode afterwards.
    """
    home, was_training = next(model.parameters()).device, model.training
    model.to(device).eval()
    try:
        return _model_scores(model, units, groups, evaluated, batch_size, device)
    finally:
        model.to(home).train(was_training)


def _model_scores(
    model: MaskedGeneModel, units: Sequence[Data], groups: Tensor, evaluated: Tensor, batch_size: int, device
) -> TokenScores:
    """The loop of :func:`score_model`, with ``model`` on ``device`` in evaluation mode."""
    n = groups.numel()
    log_prob = torch.full((n,), math.nan, dtype=torch.float64)
    correct = torch.zeros(n, dtype=torch.bool)
    mask_token = model.encoder.mask_token
    for k in range(int(groups.max()) + 1):
        for start in range(0, len(units), batch_size):
            batch = collate_units(units[start : start + batch_size])
            hidden = groups[batch.node] == k
            rows = batch.core & hidden & evaluated[batch.node]
            if not rows.any():
                continue
            tokens = torch.where(hidden, torch.full_like(batch.gene, mask_token), batch.gene)
            batch = batch.to(device)
            logits = model(tokens.to(device), batch.pos, batch.edge_index, batch.edge_dist, batch.origin)
            logp = torch.log_softmax(logits[rows.to(device)].double(), dim=-1).cpu()
            target = batch.gene.cpu()[rows]
            node = batch.node.cpu()[rows]
            log_prob[node] = logp.gather(1, target[:, None]).squeeze(1)
            correct[node] = logp.argmax(dim=1) == target
    if torch.isnan(log_prob[evaluated]).any():
        raise ValueError("some evaluated nodes are not the core of any unit")
    return TokenScores(log_prob[evaluated], correct[evaluated])


def score_frequency(prior: Tensor, target: Tensor) -> TokenScores:
    """Score the gene-frequency baseline ``prior`` on true genes ``target``."""
    return TokenScores(prior.log()[target], target == prior.argmax())


def visible_neighbour_counts(
    graph: Data, groups: Tensor, targets: Tensor, allowed: Tensor, n_genes: int
) -> Tensor:
    """``[len(targets), n_genes]`` gene counts of the visible neighbours of ``targets``,
    as a coalesced sparse COO tensor (a dense one of a million held-out transcripts
    and a 5,000-gene panel would take 40 GB).

    Neighbours are taken among the ``allowed`` nodes only (the induced subgraph the
    model sees); a neighbour ``j`` of ``i`` (edge ``j → i`` of ``graph``) is visible
    when it is in another mask group.
    """
    row = torch.full((graph.num_nodes,), -1, dtype=torch.long)
    row[targets] = torch.arange(targets.numel())
    source, target = graph.edge_index
    keep = (row[target] >= 0) & allowed[source] & (groups[source] != groups[target])
    flat, count = torch.unique(row[target[keep]] * n_genes + graph.gene[source[keep]], return_counts=True)
    indices = torch.stack([flat // n_genes, flat % n_genes])
    # torch.unique's keys are sorted and distinct: the indices are coalesced by construction.
    return torch.sparse_coo_tensor(
        indices, count, (targets.numel(), n_genes), is_coalesced=True, check_invariants=False
    )


def nearest_visible_gene(graph: Data, groups: Tensor, targets: Tensor, allowed: Tensor, fallback: int) -> Tensor:
    """Gene of the nearest visible ``allowed`` neighbour of each of ``targets``
    (``fallback`` when none is visible); neighbours and visibility as in
    :func:`visible_neighbour_counts`, distances from ``graph.edge_dist``."""
    is_target = torch.zeros(graph.num_nodes, dtype=torch.bool)
    is_target[targets] = True
    source, target = graph.edge_index
    keep = is_target[target] & allowed[source] & (groups[source] != groups[target])
    source, target, dist = source[keep], target[keep], graph.edge_dist[keep]
    order = np.lexsort((dist.numpy(), target.numpy()))
    first = np.ones(order.size, dtype=bool)
    first[1:] = target.numpy()[order][1:] != target.numpy()[order][:-1]
    nearest = torch.full((graph.num_nodes,), fallback, dtype=torch.long)
    chosen = torch.from_numpy(order[first])
    nearest[target[chosen]] = graph.gene[source[chosen]]
    return nearest[targets]


def score_neighbours(counts: Tensor, target: Tensor, prior: Tensor, strength: float) -> TokenScores:
    """Score the radius-neighbour baseline (module docstring) from the sparse
    visible-neighbour ``counts`` of :func:`visible_neighbour_counts`."""
    counts = counts.coalesce()
    (row, gene), count = counts.indices(), counts.values().double()
    n = counts.size(0)
    total = torch.zeros(n, dtype=torch.float64).index_add_(0, row, count)
    true_count = torch.zeros(n, dtype=torch.float64).index_add_(0, row, count * (gene == target[row]))
    log_prob = torch.log(true_count + strength * prior[target]) - torch.log(total + strength)
    # argmax_g c_ig + pi_g / 2: a gene seen once (c >= 1) beats every unseen one (pi / 2 <= 1/2),
    # so only seen genes compete, ties going to the lowest gene as a dense argmax would.
    value = count + prior[gene] / 2
    best = torch.full((n,), -math.inf, dtype=torch.float64).scatter_reduce_(0, row, value, "amax")
    is_best = value == best[row]
    prediction = torch.full((n,), int(prior.argmax()), dtype=torch.long)
    first_best = torch.full((n,), counts.size(1), dtype=torch.long).scatter_reduce_(
        0, row[is_best], gene[is_best], "amin"
    )
    seen = total > 0
    prediction[seen] = first_best[seen]
    return TokenScores(log_prob, prediction == target)


def fit_neighbour_strength(
    counts: Tensor,
    target: Tensor,
    prior: Tensor,
    grid: Sequence[float] = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0),
) -> float:
    """The prior strength :math:`\\beta` in ``grid`` of lowest neighbour-baseline cross-entropy."""
    losses = [score_neighbours(counts, target, prior, beta).cross_entropy for beta in grid]
    return float(grid[int(np.argmin(losses))])


def evaluate_held_out(
    model: MaskedGeneModel,
    graph: Data,
    train_mask: Tensor,
    *,
    tile_size: float = 10.0,
    rate: float = 0.15,
    seed: int = 0,
    max_fit_nodes: int = 50_000,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
) -> dict[str, dict[str, float]]:
    """Masked gene prediction on the transcripts outside ``train_mask``, against both baselines.

    The held-out transcripts are scored with the protocol of the module docstring
    on their induced subgraph, cut into tiles with a halo of
    ``n_layers * radius`` µm (exact embeddings). The gene prior and the
    neighbour-baseline strength :math:`\beta` come from the training transcripts
    (at most ``max_fit_nodes`` of them, drawn with ``seed``, for :math:`\beta`).

    Parameters
    ----------
    model
        Trained masked gene model (vocabulary of ``graph.gene_names``); it runs on
        ``device`` in evaluation mode and is left on its device in its mode.
    graph
        The transcript graph (:func:`stgraph.graph.transcript_graph`), with ``gene``,
        ``pos``, ``edge_index``, ``edge_dist`` and ``radius``.
    train_mask
        ``[N]`` bool, the transcripts training could use; the others are evaluated.
    tile_size, batch_size, device
        Tiling and batching of the model's forward passes.
    rate
        Masked fraction per pass (``ceil(1 / rate)`` passes).
    seed
        Seed of the mask groups and of the β-fitting subsample.
    max_fit_nodes
        Training transcripts used to choose β.

    Returns
    -------
    ``{'model' | 'gene_frequency' | 'radius_neighbours': {'accuracy', 'cross_entropy', 'n'}}``;
    ``'nearest_neighbour_reference'``: ``{'accuracy', 'n'}`` of predicting the gene of
    the nearest visible neighbour (a reference, not a probabilistic baseline); and
    ``'neighbour_strength'``: ``{'beta': β}``.

    Raises
    ------
    ValueError
        If ``graph`` lacks one of the fields above (or has a ``radius`` that is not a
        positive number), ``train_mask`` is not a ``[N]`` bool tensor, or leaves no
        transcript to evaluate or none (controls aside) to fit the baselines on, or
        ``rate`` is outside ``(0, 1]``, ``seed`` is negative, ``max_fit_nodes`` or
        ``batch_size`` below 1, or ``device`` is unknown or a CUDA device this machine lacks.
    TypeError
        If ``model`` is not a :class:`~stgraph.models.MaskedGeneModel`, ``graph`` not a
        :class:`torch_geometric.data.Data`, ``graph.radius`` or ``rate`` not a real
        number, or ``seed``, ``max_fit_nodes`` or ``batch_size`` not an integer.

    Warns
    -----
    UserWarning
        When the model was pretrained at another radius than ``graph.radius`` (where
        its :attr:`~stgraph.models.MaskedGeneModel.radius` is known): it is scored on
        neighbourhoods of a size it never saw.
    """
    # Checked before any work: numpy's and the loops' own errors came after the baselines,
    # and max_fit_nodes=0 fitted beta on no transcript at all.
    if not isinstance(model, MaskedGeneModel):
        raise TypeError(
            "model must be a stgraph.models.MaskedGeneModel (tl.pretrain(...).model, or "
            f"stgraph.models.load_model(path)), got {type(model).__name__}"
        )
    device = resolve_device(device)
    if check_real("rate", rate) > 1:
        raise ValueError(f"rate must be in (0, 1], got {rate}")
    seed = check_seed(seed)
    max_fit_nodes = check_int("max_fit_nodes", max_fit_nodes)
    batch_size = check_int("batch_size", batch_size)
    # edge_dist too: the nearest-neighbour reference reads it after the model has scored every tile.
    check_graph_fields(graph, ("gene", "pos", "edge_index", "edge_dist"))
    if (
        not isinstance(train_mask, Tensor)
        or train_mask.dtype != torch.bool
        or train_mask.shape != (graph.num_nodes,)
    ):
        got = (
            f"{train_mask.dtype} of shape {tuple(train_mask.shape)}"
            if isinstance(train_mask, Tensor)
            else type(train_mask).__name__
        )
        raise ValueError(f"train_mask must be a bool tensor of shape [{graph.num_nodes}] (one per node), got {got}")
    if graph.get("radius") is None:
        raise ValueError(
            "the graph has no 'radius' field: evaluate_held_out needs it for the context "
            "halo (n_layers * radius µm) of the tiles the model scores"
        )
    radius = check_real("graph.radius", graph.radius)
    warn_other_radius(model, graph)
    gene = model.gene_tokens(graph)
    evaluable = ~model.is_control_gene.cpu()[gene]
    held_out = ~train_mask
    evaluated = held_out & evaluable
    if not evaluated.any():
        raise ValueError("no held-out transcripts to evaluate")
    if not (train_mask & evaluable).any():
        # The baselines would be fitted on nothing: a uniform prior, and beta picked among NaNs.
        raise ValueError(
            "train_mask selects no training transcript (other than control probes): the gene-frequency "
            "and radius-neighbour baselines are fitted on them; keep some transcripts in train_mask"
        )
    graph = graph.clone()
    graph.gene = gene
    groups = evaluation_groups(graph.num_nodes, rate, seed)
    groups[~evaluable] = -1  # training never masks a control: here it is never hidden either
    prior = gene_prior(gene[train_mask & evaluable], model.is_control_gene.cpu())
    n_genes = model.encoder.n_genes

    fit_nodes = torch.nonzero(train_mask & evaluable).flatten()
    if fit_nodes.numel() > max_fit_nodes:
        pick = np.random.default_rng(seed).choice(fit_nodes.numel(), max_fit_nodes, replace=False)
        fit_nodes = fit_nodes[torch.from_numpy(np.sort(pick))]
    fit_counts = visible_neighbour_counts(graph, groups, fit_nodes, train_mask, n_genes)
    beta = fit_neighbour_strength(fit_counts, gene[fit_nodes], prior)

    targets = torch.nonzero(evaluated).flatten()
    counts = visible_neighbour_counts(graph, groups, targets, held_out, n_genes)
    halo = len(model.encoder.layers) * radius
    units = tile_units(graph, tile_size, halo, allowed=held_out)
    scores = dict(
        model=score_model(model, units, groups, evaluated, batch_size=batch_size, device=device),
        gene_frequency=score_frequency(prior, gene[targets]),
        radius_neighbours=score_neighbours(counts, gene[targets], prior, beta),
    )
    report = {
        name: dict(accuracy=s.accuracy, cross_entropy=s.cross_entropy, n=int(s.correct.numel()))
        for name, s in scores.items()
    }
    nearest = nearest_visible_gene(graph, groups, targets, held_out, int(prior.argmax()))
    report["nearest_neighbour_reference"] = dict(
        accuracy=float((nearest == gene[targets]).double().mean()), n=int(targets.numel())
    )
    report["neighbour_strength"] = dict(beta=beta)
    return report

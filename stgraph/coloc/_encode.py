"""Run a pretrained transcript encoder over a whole graph in passes of bounded size.

Colocalization needs the encoder's attention on every edge and domains need its
embedding of every transcript. When every edge joins two transcripts of the same
cell (a ``within="cell"`` graph), cells do not see each other, so cells are
processed in groups of at most ``max_edges`` edges. Other graphs (``within="all"``,
data without cells) are cut into *blocks*: runs of transcripts along a Z-order curve
(:func:`stgraph.graph.spatial_order`), each passed with its ``L``-hop halo for an
``L``-layer encoder. A layer moves information one edge, so the block's outputs
need the halo's transcripts and only the edges into the transcripts within
``L - 1`` hops of the block; the outputs of the halo itself are discarded. Either
way every pass uses the positional-encoding origins of the whole graph, and the
outputs equal those of one pass over the whole graph (to float rounding) at a
fraction of the memory.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch_geometric.data import Data

from ..data.batching import IncomingEdges
from ..graph.ordering import spatial_order
from ..nn import EdgeDistAdapter, TranscriptEncoder
from ..nn.positional import transcript_origin
from .._validation import check_int, check_non_negative

#: Edges per forward pass.
MAX_EDGES = 1 << 22


@dataclass(frozen=True)
class EncoderOutputs:
    """Per-transcript embeddings and per-edge attention of an encoder.

    Attributes
    ----------
    embedding
        ``(N, d_model)`` final embeddings.
    attention
        ``(E,)`` attention weight of each edge of the graph, averaged over the heads
        and the layers; None when not asked for.
    """

    embedding: np.ndarray
    attention: np.ndarray | None


def resolve_encoder(model, graph: Data) -> tuple[TranscriptEncoder, torch.Tensor]:
    """The encoder of ``model`` and the graph's genes as its tokens.

    ``model`` is a :class:`~stgraph.nn.TranscriptEncoder` (same gene order as the
    graph assumed), a model with ``.encoder`` and ``.gene_tokens(graph)`` (as
    returned by :func:`stgraph.tl.pretrain`), or the pretraining result itself.

    Raises
    ------
    ValueError
        If a bare encoder has another number of genes than the graph's ``gene_names``,
        or the graph holds genes unknown to a pretrained model.
    """
    encoder = _encoder_of(model)
    model = getattr(model, "model", model)
    if model is not encoder:
        return encoder, model.gene_tokens(graph)
    names = graph.get("gene_names")
    if names is not None and len(names) != encoder.n_genes:
        # Without names, code k is the encoder's gene k: another panel would be read as this one.
        raise ValueError(
            f"the graph has {len(names)} genes and the TranscriptEncoder {encoder.n_genes}: an encoder has no "
            "gene names and reads the graph's gene codes as its tokens, so it needs the genes it was trained "
            "on, in that order; pass the pretrained model (tl.pretrain(...).model), which matches genes by name"
        )
    return encoder, graph.gene


def _encoder_of(model) -> TranscriptEncoder:
    """The encoder of ``model`` (see :func:`resolve_encoder`); a TypeError for anything else."""
    model = getattr(model, "model", model)
    if isinstance(model, TranscriptEncoder):
        return model
    encoder = getattr(model, "encoder", None)
    if isinstance(encoder, TranscriptEncoder) and hasattr(model, "gene_tokens"):
        return encoder
    raise TypeError(
        "model must be a TranscriptEncoder, a pretrained model with .encoder and .gene_tokens, "
        f"or the result of stgraph.tl.pretrain; got {type(model).__name__}"
    )


def check_returns_attention(model) -> None:
    """Raise before any work unless every layer of ``model``'s encoder returns attention weights.

    Raises
    ------
    TypeError
        If ``model`` is none of the inputs :func:`resolve_encoder` takes.
    ValueError
        If a layer's ``forward`` has no ``return_attention_weights`` argument.
    """
    without = set()
    for layer in _encoder_of(model).layers:
        conv, returns = layer.conv, layer.supports_attention
        if isinstance(conv, EdgeDistAdapter):  # takes the argument whatever it wraps
            conv, returns = conv.conv, conv.supports_attention
        if not returns:
            without.add(type(conv).__name__)
    if without:
        raise ValueError(
            f"the encoder's layers ({', '.join(sorted(without))}) return no attention weights (their forward "
            "has no return_attention_weights argument), and the attention score weights the edges "
            "by them: pass model=None for uniform weights, or attention= with weights of your own"
        )


def _batches(graph: Data, edge_dist: torch.Tensor, max_edges: int, n_layers: int):
    """Yield ``(nodes, edge_ids, local_edges, kept)`` per pass: its sorted nodes, the ids of
    its edges, those edges as positions in ``nodes`` (sorted by target), and the nodes
    (a bool mask over ``nodes``) whose outputs that pass gives; the passes' kept nodes
    partition the graph. The whole graph when it fits in one pass, else cell groups for a
    within-cell graph (:func:`_cell_batches`) and blocks with their halo otherwise
    (:func:`_halo_batches`); ``edge_dist`` holds the edges' lengths."""
    cell = graph.cell.numpy() if graph.get("cell") is not None else np.full(graph.num_nodes, -1)
    src, dst = graph.edge_index.numpy()
    if src.size <= max_edges:
        yield np.arange(cell.size), np.arange(src.size), np.stack([src, dst]), np.ones(cell.size, dtype=bool)
    elif _within_cells(cell, src, dst, max_edges):
        position = np.full(cell.size, -1, dtype=np.int64)
        for nodes, edge_ids in _cell_batches(cell, src, dst, max_edges):
            position[nodes] = np.arange(nodes.size)
            yield nodes, edge_ids, position[np.stack([src[edge_ids], dst[edge_ids]])], np.ones(nodes.size, dtype=bool)
            position[nodes] = -1
    else:
        yield from _halo_batches(graph, edge_dist, max_edges, n_layers)


def _within_cells(cell: np.ndarray, src: np.ndarray, dst: np.ndarray, chunk: int) -> bool:
    """Whether every edge joins two transcripts of one cell, read ``chunk`` edges at a
    time (bounded memory, and an early answer for a graph whose edges cross cells)."""
    for start in range(0, src.size, chunk):
        target = cell[dst[start : start + chunk]]
        if not np.all((cell[src[start : start + chunk]] == target) & (target >= 0)):
            return False
    return True


def _halo_batches(graph: Data, edge_dist: torch.Tensor, max_edges: int, n_layers: int):
    """The blocks of the module docstring, each pass of at most ``max_edges`` edges
    unless a single transcript's halo has more."""
    n = graph.num_nodes
    incoming = IncomingEdges(graph.edge_index, n)
    in_degree = np.diff(incoming.ptr.numpy())
    order = spatial_order(graph.pos, _block_cell_size(graph.get("radius"), edge_dist)).numpy()
    load = np.cumsum(in_degree[order])
    # Scratch arrays over all nodes, reset after each pass: per-pass work stays that of
    # the pass (no sort or search over all edges).
    scratch = _Scratch(np.zeros(n, dtype=np.int8), np.full(n, -1, dtype=np.int64))
    # share: the block's own edges over a pass's, below 1 by what the halo adds; set
    # from each pass's halo for the next block, which lies next to it.
    start, share = 0, 1.0
    while start < n:
        done = load[start - 1] if start else 0
        while True:
            stop = max(start + 1, int(np.searchsorted(load, done + share * max_edges, side="right")))
            batch = _with_halo(incoming, np.sort(order[start:stop]), n_layers, scratch)
            n_edges = batch[1].size
            share = min(1.0, 0.95 * share * max_edges / max(n_edges, 1))
            if n_edges <= max_edges or stop == start + 1:
                break
        yield batch
        start = stop


def _block_cell_size(radius: float | None, edge_dist: torch.Tensor) -> float:
    """Grid of the Z-order that cuts the blocks: the graph's radius, else its longest edge."""
    if radius is not None and np.isfinite(float(radius)) and float(radius) > 0:
        return float(radius)
    longest = float(edge_dist.max())
    return longest if np.isfinite(longest) and longest > 0 else 1.0


@dataclass(frozen=True)
class _Scratch:
    """Per-node arrays :func:`_with_halo` marks and resets: ``hops`` (0: not in the
    pass, else 1 + the node's hop distance from the block) and ``position`` (index in
    the pass's nodes, -1 outside)."""

    hops: np.ndarray
    position: np.ndarray


def _with_halo(incoming: IncomingEdges, block: np.ndarray, n_layers: int, scratch: _Scratch):
    """The pass of ``block`` (sorted): it and every node within ``n_layers`` hops upstream
    of it, and the edges into nodes within ``n_layers - 1`` hops (the others cannot
    reach the block in time), as :func:`_batches` yields them."""
    hops = scratch.hops
    hops[block] = 1
    frontier, rings = block, [block]
    for hop in range(2, n_layers + 2):
        sources = incoming.sources(torch.from_numpy(frontier)).numpy()
        frontier = np.unique(sources[hops[sources] == 0])
        if frontier.size == 0:
            break
        hops[frontier] = hop
        rings.append(frontier)
    nodes = np.sort(np.concatenate(rings))
    # Every edge into a node within n_layers - 1 hops starts in the pass.
    inner = nodes[(hops[nodes] >= 1) & (hops[nodes] <= n_layers)]
    slot, count = incoming.slots(torch.from_numpy(inner))
    position = scratch.position
    position[nodes] = np.arange(nodes.size)
    local = np.stack([position[incoming.source[slot].numpy()], np.repeat(position[inner], count.numpy())])
    kept = hops[nodes] == 1
    hops[nodes] = 0
    position[nodes] = -1
    return nodes, incoming.edge_ids(slot).numpy(), local, kept


def _cell_batches(cell: np.ndarray, src: np.ndarray, dst: np.ndarray, max_edges: int):
    """Yield ``(nodes, edge_ids)``: runs of whole cells of at most ``max_edges`` edges
    (then the unassigned transcripts, which have no edges) of a within-cell graph."""
    n_cells = int(cell.max()) + 1
    edge_cell = cell[dst]
    edges_per_cell = np.bincount(edge_cell, minlength=n_cells)
    # Consecutive cells whose edges fit in one pass: cut where the running sum crosses.
    group = np.zeros(n_cells, dtype=np.int64)
    current, load = 0, 0
    for c in range(n_cells):
        if load and load + edges_per_cell[c] > max_edges:
            current, load = current + 1, 0
        group[c] = current
        load += edges_per_cell[c]
    node_group = np.where(cell >= 0, group[np.maximum(cell, 0)], group[-1] + 1)
    node_order = np.argsort(node_group, kind="stable")
    node_bounds = np.searchsorted(node_group[node_order], np.arange(group[-1] + 3))
    edge_order = np.argsort(group[edge_cell], kind="stable")
    edge_bounds = np.searchsorted(group[edge_cell][edge_order], np.arange(group[-1] + 3))
    for g in range(group[-1] + 2):
        nodes = np.sort(node_order[node_bounds[g] : node_bounds[g + 1]])
        if nodes.size:
            yield nodes, np.sort(edge_order[edge_bounds[g] : edge_bounds[g + 1]])


@torch.no_grad()
def encoder_outputs(
    model,
    graph: Data,
    *,
    attention: bool = False,
    max_edges: int = MAX_EDGES,
    masked: np.ndarray | None = None,
) -> EncoderOutputs:
    """Embeddings (and mean attention) of every transcript of ``graph``.

    Parameters
    ----------
    model
        See :func:`resolve_encoder`; run in eval mode, without gradients.
    graph
        Transcript graph with ``gene``, ``pos``, ``edge_index`` and optionally
        ``edge_dist`` and ``cell`` (as built by :func:`stgraph.graph.transcript_graph`).
    attention
        Also return the attention of every edge averaged over heads and layers (a
        layer's weights on edges outside the graph, such as the self-loops PyG's
        ``GATConv`` adds, are left out).
    max_edges
        Edges per forward pass, halo included (see the module docstring); a pass
        exceeds it only for a single cell, or a single transcript's halo, that has more.
    masked
        ``(N,)`` bool, transcripts whose gene is replaced by the ``[MASK]`` token.
    """
    encoder, tokens = resolve_encoder(model, graph)
    if masked is not None:
        masked = torch.as_tensor(np.asarray(masked))
        if masked.shape != tokens.shape or masked.dtype != torch.bool:
            raise ValueError(f"masked must be a bool array with one entry per transcript ({tokens.numel()})")
        tokens = torch.where(masked, torch.full_like(tokens, encoder.mask_token), tokens)
    was_training = encoder.training
    encoder.eval()
    try:
        device = next(encoder.parameters()).device
        n = graph.num_nodes
        edge_index = graph.edge_index
        edge_dist = graph.get("edge_dist")
        if edge_dist is None:
            edge_dist = (graph.pos[edge_index[0]] - graph.pos[edge_index[1]]).norm(dim=-1)
        origin = transcript_origin(graph.pos, graph.get("cell"))
        embedding = np.zeros((n, encoder.d_model), dtype=np.float32)
        mean_attention = np.zeros(edge_index.shape[1]) if attention else None
        for nodes, edge_ids, local_edges, kept in _batches(graph, edge_dist, max_edges, len(encoder.layers)):
            sub_edges = torch.from_numpy(local_edges)
            index = torch.from_numpy(nodes)
            out = encoder(
                tokens[index].to(device),
                graph.pos[index].to(device),
                sub_edges.to(device),
                edge_dist[torch.from_numpy(edge_ids)].to(device),
                origin[index].to(device),
                return_attention_weights=attention,
            )
            if attention:
                out, layers = out
                into_kept = kept[sub_edges[1].numpy()]
                mean_attention[edge_ids[into_kept]] = _mean_over_heads_and_layers(layers, sub_edges, nodes.size)[
                    into_kept
                ]
            embedding[nodes[kept]] = out.float().cpu().numpy()[kept]
        return EncoderOutputs(embedding=embedding, attention=mean_attention)
    finally:
        encoder.train(was_training)


def masked_embeddings(
    model, graph: Data, *, n_passes: int = 7, seed: int = 0, max_edges: int = MAX_EDGES
) -> np.ndarray:
    """Embedding of every transcript computed with its own gene hidden.

    The transcripts are split at random into ``n_passes`` disjoint groups; pass
    ``k`` replaces the genes of group ``k`` by ``[MASK]`` and keeps their outputs.
    Each transcript's embedding then depends on its position and its neighbours'
    genes only: what the encoder infers of the place from its context, as in a
    masked-gene-modelling step (7 passes mask about 14 % of the tokens at a time,
    close to the 15 % of pretraining).

    Parameters
    ----------
    model
        See :func:`resolve_encoder`.
    graph
        Transcript graph, as for :func:`encoder_outputs`.
    n_passes
        Number of groups (forward passes), at least 2.
    seed
        Seed of the split.
    max_edges
        Edges per forward pass, as for :func:`encoder_outputs`.

    Returns
    -------
    ``(N, d_model)`` float32 embeddings.
    """
    check_int("n_passes", n_passes, minimum=2)
    encoder, _ = resolve_encoder(model, graph)
    group = np.random.default_rng(seed).integers(0, n_passes, graph.num_nodes)
    embedding = np.empty((graph.num_nodes, encoder.d_model), dtype=np.float32)
    for k in range(n_passes):
        hidden = group == k
        embedding[hidden] = encoder_outputs(model, graph, max_edges=max_edges, masked=hidden).embedding[hidden]
    return embedding


def _mean_over_heads_and_layers(layers, edge_index: torch.Tensor, num_nodes: int) -> np.ndarray:
    return edge_attention(
        [_on_graph_edges(returned, alpha, edge_index, num_nodes) for returned, alpha in layers],
        edge_index.shape[1],
    )


def _on_graph_edges(returned: torch.Tensor, alpha: torch.Tensor, edge_index: torch.Tensor, num_nodes: int):
    """A layer's attention ``alpha`` on ``returned`` edges, taken on the graph's edges.

    Layers such as PyG's ``GATConv`` (``add_self_loops=True``, its default) attend
    over the graph plus a self-loop per node and return the weights on that larger
    edge set, loops last; what they give the graph's edges is kept, the rest dropped.

    Raises
    ------
    ValueError
        If the layer returned no weight for some edge of the graph, or one edge twice.
    """
    returned = returned.cpu()
    if torch.equal(returned, edge_index):
        return alpha
    alpha = alpha.cpu()
    # (The encoder checked the shapes: edge_index [2, E'], alpha [E'] or [E', heads].)
    # One int64 key per edge, target-major: the graph's edges are looked up among the returned ones.
    key = returned[1] * num_nodes + returned[0]
    order = torch.argsort(key)
    sorted_key = key[order]
    if bool((sorted_key[1:] == sorted_key[:-1]).any()):
        raise ValueError("the encoder's layer returned attention on the same edge twice")
    wanted = edge_index[1] * num_nodes + edge_index[0]
    missing = int((~torch.isin(wanted, sorted_key)).sum())
    if missing:
        raise ValueError(
            f"the encoder's layer returned attention on edges other than the graph's: "
            f"{missing} of the graph's {wanted.numel()} edges have no weight"
        )
    return alpha[order[torch.searchsorted(sorted_key, wanted)]]


def edge_attention(attention, n_edges: int) -> np.ndarray:
    """``(E,)`` attention of each edge, averaged over the heads and, for a list of
    ``(E,)`` or ``(E, heads)`` arrays or tensors (one per layer), over the layers.
    A list of numbers is one ``(E,)`` array (read per layer, each number was a layer).

    Raises
    ------
    ValueError
        If the list is empty, an array has not one row per edge, or its weights are
        not finite and non-negative.
    TypeError
        If an array does not hold real numbers (strings, booleans and complex
        numbers are refused, not converted).
    """
    if isinstance(attention, (list, tuple)) and (not attention or any(np.ndim(layer) for layer in attention)):
        if not attention:
            raise ValueError("attention is an empty list")
        total = np.zeros(n_edges)
        for i, layer in enumerate(attention):
            total += _layer_attention(f"attention[{i}]", layer, n_edges)
        return total / len(attention)
    return _layer_attention("attention", attention, n_edges)


def _layer_attention(name: str, layer, n_edges: int) -> np.ndarray:
    """``(E,)`` attention of one layer (``name`` in messages), averaged over its heads."""
    if isinstance(layer, torch.Tensor):
        real = layer.dtype != torch.bool and not layer.is_complex()
        kind = str(layer.dtype)
        weight = layer.detach().cpu().double().numpy() if real else None
    else:
        weight = np.asarray(layer)
        kind = str(weight.dtype)
        real = weight.dtype.kind in "iuf"
    if not real:
        raise TypeError(f"{name} must be an array or tensor of real numbers, one row per edge; got dtype {kind}")
    if weight.ndim == 0:
        hint = ": a list holds one array per layer" if name != "attention" else ""
        raise ValueError(f"{name} must have one row per edge ({n_edges}), got a single number{hint}")
    if weight.ndim == 2:
        weight = weight.mean(axis=1)
    if weight.shape != (n_edges,):
        raise ValueError(f"{name} must have one row per edge ({n_edges}), got shape {weight.shape}")
    return check_non_negative(name, weight)

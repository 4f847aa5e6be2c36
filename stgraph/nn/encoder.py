"""Transcript encoder: a BERT-style encoder whose attention runs along a radius graph."""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any, Callable

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.nn import MessagePassing

from .._validation import check_bool, check_dropout, check_int, check_plain
from ..graph._fields import check_graph_fields
from .conv import SpatialTransformerConv
from .conv._edge_lengths import checked_edge_dist
from .positional import (
    DEFAULT_PE_BASE,
    DEFAULT_PE_SCALE,
    SinusoidalPositionalEncoding,
    check_pe_frequencies,
    check_pe_width,
    transcript_origin,
)

ConvFactory = Callable[[int, int], MessagePassing]
#: Name under which the default layer is recorded in an encoder's config.
DEFAULT_CONV = "SpatialTransformerConv"


def check_conv_kwargs(conv_kwargs: Any) -> dict[str, Any]:
    """``conv_kwargs`` as a new dict (empty for None) after checking that it is a mapping.

    Raises
    ------
    TypeError
        If it is neither None nor a mapping: ``dict()`` of a list or a string failed
        with a message about "dictionary update sequence elements".
    """
    if conv_kwargs is None:
        return {}
    if not isinstance(conv_kwargs, Mapping):
        raise TypeError(
            f"conv_kwargs must be a dict of keyword arguments of the layer, or None, got {type(conv_kwargs).__name__}"
        )
    return dict(conv_kwargs)


def check_default_heads(d_model: int, heads: int) -> None:
    """Refuse a ``d_model`` that the default :class:`SpatialTransformerConv` cannot
    split into ``heads`` (the layer's own refusal names its ``out_channels``, an
    argument the encoder's user never gave).

    Raises
    ------
    ValueError
        If ``d_model`` is not a multiple of ``heads``.
    """
    if d_model % heads:
        raise ValueError(
            f"d_model={d_model} must be a multiple of heads={heads}: each head gets d_model / heads channels"
        )


def _spatial_transformer_factory(conv_kwargs: dict[str, Any]) -> ConvFactory:
    def build(d_model: int, heads: int) -> MessagePassing:
        return SpatialTransformerConv(d_model, d_model, heads=heads, **conv_kwargs)

    return build


def conv_name(conv: type | ConvFactory) -> str | None:
    """Import path ``"module:qualname"`` under which a layer factory is recorded.

    None for a factory that no import path rebuilds: a lambda, a function or class
    defined inside a function (their qualified names hold ``<lambda>`` or
    ``<locals>``), a :func:`functools.partial` or a callable object (nor the
    arguments it holds).
    """
    qualname = getattr(conv, "__qualname__", None)
    if qualname is None or "<" in qualname:
        return None
    return f"{conv.__module__}:{qualname}"


def resolve_conv(name: str | None) -> ConvFactory:
    """Import the layer factory recorded as ``name`` by :func:`conv_name`.

    Raises
    ------
    ValueError
        If ``name`` is None (the factory had no import path) or cannot be imported
        (the message names why, e.g. its module is not on ``sys.path``).
    """
    if name is None:
        raise ValueError(
            "the layer factory was not recorded in the config (a lambda, a function or class "
            "defined inside a function, a functools.partial or a callable object has no import "
            "path); pass it again as conv="
        )
    if name == DEFAULT_CONV:
        return SpatialTransformerConv
    module, _, qualname = name.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        # The cause tells a module that is not on sys.path (or a script's __main__) from a
        # renamed class.
        raise ValueError(
            f"cannot import the layer factory {name!r} recorded in the config ({err}); make its "
            "module importable or pass it again as conv="
        ) from err
    return obj


def _check_call(conv: MessagePassing) -> None:
    """Raise a TypeError unless ``conv.forward`` takes the edge lengths third, as ``edge_dist``.

    PyG's layers take edge weights, edge features, a size or positions there (GCNConv,
    TransformerConv, SAGEConv, PointNetConv), or nothing: lengths would be misread
    silently or fail deep inside the layer. A ``*args`` forward is trusted.
    """
    signature = inspect.signature(conv.forward)
    try:
        arguments = signature.bind("x", "edge_index", "edge_dist").arguments
    except TypeError:
        arguments = {}
    variadic = any(signature.parameters[name].kind is inspect.Parameter.VAR_POSITIONAL for name in arguments)
    if arguments.get("edge_dist") != "edge_dist" and not variadic:
        raise TypeError(
            f"{type(conv).__name__}.forward takes {list(signature.parameters)}, not the edge "
            "lengths third as edge_dist: the encoder calls layer(x, edge_index, edge_dist). "
            "Wrap the layer in stgraph.nn.EdgeDistAdapter (edge_dist_arg names the argument "
            "that gets the lengths, if any)"
        )


def _dims_hint(n_dims: int, pos: Tensor) -> str:
    """Why positions of 2 or 3 axes do not fit an encoder of ``n_dims`` axes, or nothing."""
    axes = {2: "x, y", 3: "x, y, z"}
    if pos.dim() != 2 or pos.size(1) not in axes or pos.size(1) == n_dims:
        return ""
    # the usual cause: a model pretrained on data with z used on data without (or the reverse)
    return (
        f": the encoder encodes {n_dims}D positions ({axes[n_dims]}) and these transcripts have "
        f"{pos.size(1)}D ones ({axes[pos.size(1)]}); use a model pretrained on {pos.size(1)}D data"
    )


def _edge_lengths(pos: Tensor, edge_index: Tensor, edge_dist: Tensor | None) -> Tensor:
    """``[E]`` edge lengths: ``edge_dist`` checked (:func:`checked_edge_dist`), or
    computed from ``pos``. Checked here for every layer: a user-written one would turn
    NaN, infinite or negative lengths into NaN or wrong embeddings silently."""
    if edge_dist is None:
        return (pos[edge_index[0]] - pos[edge_index[1]]).norm(dim=-1)
    return checked_edge_dist(edge_dist, edge_index.size(1))


def _check_own_parameters(layers: torch.nn.ModuleList) -> None:
    """Raise a ValueError if two blocks' layers share a parameter.

    A factory that returns one layer over and over (or wraps one in a new adapter each
    time) would tie the weights of all blocks silently.
    """
    owner: dict[int, int] = {}
    for block, layer in enumerate(layers):
        for parameter in layer.conv.parameters():
            first = owner.setdefault(id(parameter), block)
            if first != block:
                raise ValueError(
                    f"the layer factory gave blocks {first} and {block} layers that share "
                    "parameters (the same layer twice?): it must build a new layer on every call"
                )


def _check_dtype(layers: torch.nn.ModuleList, dtype: torch.dtype) -> None:
    """Raise a TypeError if a block's layer has floating-point parameters of another
    dtype than the encoder's (``dtype``).

    A layer built in float64 inside a float32 encoder failed deep inside the layer
    (``mat1 and mat2 must have the same dtype``) at the first forward pass.
    """
    for block, layer in enumerate(layers):
        for name, parameter in layer.conv.named_parameters():
            if parameter.is_floating_point() and parameter.dtype != dtype:
                raise TypeError(
                    f"the layer factory built {type(layer.conv).__name__} (block {block}) with "
                    f"{name} in {parameter.dtype}, but the encoder's weights are {dtype}: build "
                    "the layers in the default dtype and convert the whole encoder instead "
                    "(e.g. encoder.double())"
                )


def _check_attention(name: str, attention: object) -> None:
    """Raise unless a layer's attention is ``(edge_index [2, E'], alpha [E'] or [E', heads])``.

    A bare ``alpha`` was passed on as the block's attention, and colocalization failed
    on unpacking it ("too many values to unpack"), or, with two edges, took its two
    weights for the edges and the weights; an ``alpha`` of another shape was refused
    there as "attention" the user never passed.

    ``name`` names the layer in the messages.

    Raises
    ------
    TypeError
        If ``attention`` is not a pair of tensors.
    ValueError
        If their shapes are not those above.
    """
    if not (isinstance(attention, tuple) and len(attention) == 2
            and all(isinstance(part, Tensor) for part in attention)):
        got = (f"a tuple of {[type(part).__name__ for part in attention]}"
               if isinstance(attention, tuple) else f"a {type(attention).__name__}")
        raise TypeError(
            f"{name} returned attention weights as {got}; expected "
            "(out, (edge_index, alpha)) as PyG layers return"
        )
    edge_index, alpha = attention
    if edge_index.dim() != 2 or edge_index.size(0) != 2 or alpha.dim() not in (1, 2) \
            or alpha.size(0) != edge_index.size(1):
        raise ValueError(
            f"{name} returned attention weights of shape {tuple(alpha.shape)} on edges of shape "
            f"{tuple(edge_index.shape)}; expected (edge_index [2, E'], alpha [E'] or [E', heads])"
        )


class TranscriptEncoderLayer(torch.nn.Module):
    r"""One pre-LayerNorm encoder block over a transcript graph.

    .. math::

        h &= x + \mathrm{Dropout}\big(\mathrm{Conv}(\mathrm{LN}_1(x), E, d)\big) \\
        x' &= h + \mathrm{Dropout}\big(W_2\, \mathrm{Dropout}(\mathrm{GELU}(W_1 \mathrm{LN}_2(h)))\big)

    where ``Conv`` is any message-passing layer called as ``conv(x, edge_index,
    edge_dist)`` that maps ``[N, d_model]`` to ``[N, d_model]``.

    Parameters
    ----------
    conv
        The attention (message-passing) layer; its ``forward`` takes the edge lengths
        third, named ``edge_dist`` (other layers go through
        :class:`~stgraph.nn.conv.EdgeDistAdapter`).
    d_model
        Token width.
    ff_dim
        Hidden width of the feed-forward network.
    dropout
        Dropout on both residual branches and inside the feed-forward network.
    block
        Index of the block in its encoder, named with the layer in the errors of
        :meth:`forward` (a wrong width then points to one block); None for none.

    Raises
    ------
    TypeError
        If ``conv`` is not a :class:`~torch_geometric.nn.MessagePassing` layer or its
        ``forward`` has no third argument ``edge_dist`` (nor ``*args``), ``d_model``,
        ``ff_dim`` or ``block`` is not an integer, or ``dropout`` not a real number.
    ValueError
        If ``d_model`` or ``ff_dim`` is below 1, ``block`` is negative, or ``dropout``
        is not in ``[0, 1)``.
    """

    def __init__(
        self, conv: MessagePassing, d_model: int, ff_dim: int, dropout: float = 0.0, *, block: int | None = None
    ) -> None:
        super().__init__()
        if not isinstance(conv, MessagePassing):
            raise TypeError(
                f"the layer factory must return a torch_geometric MessagePassing layer, "
                f"got {type(conv).__name__}"
            )
        _check_call(conv)
        d_model, ff_dim = check_int("d_model", d_model), check_int("ff_dim", ff_dim)
        dropout = check_dropout(dropout)
        self.conv = conv
        # One name for the layer in every error of forward: with the block, the one at fault.
        self.label = type(conv).__name__
        if block is not None:
            self.label += f" (block {check_int('block', block, minimum=0)})"
        self.norm1 = torch.nn.LayerNorm(d_model)
        self.norm2 = torch.nn.LayerNorm(d_model)
        self.ff = torch.nn.Sequential(
            torch.nn.Linear(d_model, ff_dim),
            torch.nn.GELU(),
            torch.nn.Dropout(dropout),
            torch.nn.Linear(ff_dim, d_model),
        )
        self.dropout = torch.nn.Dropout(dropout)
        self.d_model = d_model
        self.supports_attention = (
            "return_attention_weights" in inspect.signature(conv.forward).parameters
        )

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()
        self.norm1.reset_parameters()
        self.norm2.reset_parameters()
        for module in self.ff:
            if isinstance(module, torch.nn.Linear):
                module.reset_parameters()

    def forward(
        self, x: Tensor, edge_index: Tensor, edge_dist: Tensor, return_attention_weights: bool = False
    ) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
        """Run the block.

        Parameters
        ----------
        x
            ``[N, d_model]`` token features.
        edge_index
            ``[2, E]`` edges (source, target).
        edge_dist
            ``[E]`` edge lengths, passed to the layer third.
        return_attention_weights
            Also return the layer's ``(edge_index, alpha)``.

        Returns
        -------
        ``[N, d_model]`` features, with the layer's ``(edge_index, alpha)`` when
        ``return_attention_weights``.

        Raises
        ------
        ValueError
            If attention weights are asked of a layer whose ``forward`` takes no
            ``return_attention_weights``, or the layer returns another shape or dtype
            than ``x``'s.
        TypeError
            If the layer, asked for attention weights, returns no ``(out, attention)`` pair.
        """
        h = self.norm1(x)
        if check_bool("return_attention_weights", return_attention_weights):
            if not self.supports_attention:
                raise ValueError(
                    f"{self.label}: its forward has no return_attention_weights "
                    "argument, so the encoder cannot return attention weights"
                )
            returned = self.conv(h, edge_index, edge_dist, return_attention_weights=True)
            # Unpacking a tensor would split its rows: a layer that ignores the flag
            # failed on the unpacking, or (two nodes) took a row for the attention.
            if not (isinstance(returned, tuple) and len(returned) == 2):
                raise TypeError(
                    f"{self.label} returned {type(returned).__name__} when asked "
                    "for attention weights; expected (out, (edge_index, alpha)) as PyG layers return"
                )
            h, attention = returned
            _check_attention(self.label, attention)
        else:
            h = self.conv(h, edge_index, edge_dist)
        # Under autocast the layer's output is in the autocast dtype by design.
        other_dtype = isinstance(h, Tensor) and h.dtype != x.dtype and not torch.is_autocast_enabled(x.device.type)
        if not isinstance(h, Tensor) or h.shape != x.shape or other_dtype:
            got = f"shape {tuple(h.shape)} in {h.dtype}" if isinstance(h, Tensor) else f"a {type(h).__name__}"
            raise ValueError(
                f"{self.label} returned {got}; the layer factory must build layers mapping "
                f"[N, d_model] to [N, d_model] (d_model={self.d_model}) in the input's dtype ({x.dtype})"
            )
        x = x + self.dropout(h)
        x = x + self.dropout(self.ff(self.norm2(x)))
        return (x, attention) if return_attention_weights else x


class TranscriptEncoder(torch.nn.Module):
    r"""Encoder of transcript tokens over a radius graph.

    Each transcript ``i`` with gene ``g_i`` at ``p_i`` (µm) becomes the token

    .. math::

        x_i^{(0)} = E[g_i] + \mathrm{PE}(p_i - o_i),

    with a learned gene embedding ``E`` (row ``n_genes`` is the ``[MASK]`` token),
    the sinusoidal encoding of :mod:`stgraph.nn.positional` and origin ``o_i``
    (its cell's centroid, else its tile's or graph's; see
    :func:`~stgraph.nn.positional.transcript_origin`). ``n_layers`` pre-LayerNorm
    blocks (:class:`TranscriptEncoderLayer`) follow, each attending only along the
    edges of the graph, and a final LayerNorm.

    Parameters
    ----------
    n_genes
        Size of the gene vocabulary; token ``n_genes`` is ``[MASK]``.
    d_model
        Token width; a multiple of ``heads`` and at least ``2 * n_dims`` (see
        :func:`~stgraph.nn.positional.sinusoidal_position_encoding` for widths that
        are not a multiple of ``2 * n_dims``).
    n_layers
        Number of encoder blocks.
    heads
        Attention heads per block, passed to the layer factory.
    conv
        Layer of each block: None or :class:`~stgraph.nn.conv.SpatialTransformerConv`
        (built as ``SpatialTransformerConv(d_model, d_model, heads=heads,
        **conv_kwargs)``), or any factory ``conv(d_model, heads)`` returning a
        :class:`~torch_geometric.nn.MessagePassing` layer that is called as
        ``layer(x, edge_index, edge_dist)`` (``edge_dist`` of shape ``[E]``; its
        ``forward`` must name that argument ``edge_dist``) and maps ``[N, d_model]``
        to ``[N, d_model]`` (a layer of another width is refused at the first
        forward pass, naming its block: a layer declares no width to check when
        built). PyG's own layers read their third argument as something
        else (edge weights, edge features, a size): wrap them in
        :class:`~stgraph.nn.conv.EdgeDistAdapter`. Attention weights can be returned
        when its ``forward`` takes ``return_attention_weights`` (PyG convention).
        A layer *instance* raises a TypeError, a factory whose layers share
        parameters between blocks (e.g. one that returns the same layer each time)
        a ValueError: each block needs its own layer.
        A factory is recorded in :attr:`config` by its import path
        (:func:`conv_name`); one without (a lambda, a function or class defined
        inside a function, a :func:`functools.partial`, a callable object) is
        recorded as None, and :meth:`from_config` then needs it as ``conv``.
    conv_kwargs
        Keyword arguments of :class:`~stgraph.nn.conv.SpatialTransformerConv`;
        only with the default layer. NumPy values and tensors are recorded (and
        given to the layer) as Python numbers or lists, so that a checkpoint of the
        encoder loads and resumes; other values must be plain Python values.
    ff_dim
        Feed-forward hidden width (a positive integer); default ``4 * d_model``.
    dropout
        Dropout inside the blocks.
    n_dims
        Number of spatial axes (2 or 3).
    pe_scale
        Length scale of the positional encoding in µm.
    pe_base
        Frequency base of the positional encoding.

    Raises
    ------
    ValueError
        ``n_genes``, ``d_model``, ``n_layers``, ``heads`` or ``ff_dim`` is below 1,
        ``n_dims`` is not 2 or 3, ``d_model < 2 * n_dims``, ``d_model`` is not a
        multiple of ``heads`` for the default layer, ``pe_scale`` is not a
        positive finite number, ``pe_base`` not a finite number > 1, ``dropout``
        lies outside ``[0, 1)``, or the layers ``conv`` builds share parameters.
    TypeError
        One of those sizes or ``n_dims`` is not an integer (booleans included),
        ``pe_scale``, ``pe_base`` or ``dropout`` is not a real number,
        ``conv`` is a layer instance or not callable, builds a layer whose
        ``forward`` does not take ``edge_dist`` third or whose parameters are of
        another floating-point dtype than the encoder's (the default dtype; convert
        the whole encoder, e.g. ``.double()``, instead), or ``conv_kwargs`` is not
        a mapping or holds a value that is neither plain Python, NumPy nor a tensor (e.g. a
        :class:`fractions.Fraction`).
    """

    def __init__(
        self,
        n_genes: int,
        d_model: int = 64,
        n_layers: int = 2,
        heads: int = 4,
        *,
        conv: type | ConvFactory | None = None,
        conv_kwargs: dict[str, Any] | None = None,
        ff_dim: int | None = None,
        dropout: float = 0.0,
        n_dims: int = 2,
        pe_scale: float = DEFAULT_PE_SCALE,
        pe_base: float = DEFAULT_PE_BASE,
    ) -> None:
        super().__init__()
        ff_dim = 4 * d_model if ff_dim is None else ff_dim
        n_genes, d_model, n_layers, heads, ff_dim, n_dims = (
            check_int(name, value) for name, value in (
                ("n_genes", n_genes), ("d_model", d_model), ("n_layers", n_layers),
                ("heads", heads), ("ff_dim", ff_dim), ("n_dims", n_dims))
        )
        check_pe_width(d_model, n_dims)
        pe_scale, pe_base = check_pe_frequencies(pe_scale, pe_base, prefix="pe_")
        dropout = check_dropout(dropout)

        # Plain values, so that the config saved in a checkpoint loads and compares on resume.
        conv_kwargs = check_plain("conv_kwargs", check_conv_kwargs(conv_kwargs))
        if isinstance(conv, torch.nn.Module):
            raise TypeError(
                f"conv must be a layer factory (a class or a callable conv(d_model, heads) "
                f"returning a new layer per block, e.g. {type(conv).__name__} itself or "
                f"lambda d_model, heads: {type(conv).__name__}(...)), not a "
                f"{type(conv).__name__} instance: one instance would share its weights "
                "between all blocks"
            )
        if conv is None or conv is SpatialTransformerConv:
            check_default_heads(d_model, heads)
            factory = _spatial_transformer_factory(conv_kwargs)
            recorded = DEFAULT_CONV
        elif conv_kwargs:
            raise ValueError("conv_kwargs apply to the default SpatialTransformerConv only")
        elif callable(conv):
            factory, recorded = conv, conv_name(conv)
        else:
            raise TypeError(f"conv must be a layer factory, got {type(conv).__name__}")

        self.n_genes = n_genes
        self.mask_token = n_genes
        self.d_model = d_model
        self.n_dims = n_dims
        self.config: dict[str, Any] = dict(
            n_genes=n_genes,
            d_model=d_model,
            n_layers=n_layers,
            heads=heads,
            conv=recorded,
            conv_kwargs=conv_kwargs,
            ff_dim=ff_dim,
            dropout=dropout,
            n_dims=n_dims,
            pe_scale=pe_scale,
            pe_base=pe_base,
        )
        self.embedding = torch.nn.Embedding(n_genes + 1, d_model)
        self.positional = SinusoidalPositionalEncoding(d_model, n_dims, scale=pe_scale, base=pe_base)
        self.layers = torch.nn.ModuleList(
            TranscriptEncoderLayer(factory(d_model, heads), d_model, ff_dim, dropout, block=block)
            for block in range(n_layers)
        )
        _check_own_parameters(self.layers)
        _check_dtype(self.layers, self.embedding.weight.dtype)
        self.norm = torch.nn.LayerNorm(d_model)

    @classmethod
    def from_config(cls, config: dict[str, Any], conv: type | ConvFactory | None = None) -> "TranscriptEncoder":
        """Rebuild an encoder from its :attr:`config` (``conv`` overrides the recorded layer).

        Parameters
        ----------
        config
            An encoder's :attr:`config`; not modified.
        conv
            Layer class or factory to build with instead of the one recorded in
            ``config``; needed where none was recorded (a lambda, a local function).

        Returns
        -------
        A new encoder with freshly initialised weights.

        Raises
        ------
        ValueError
            If ``conv`` is None and the recorded layer factory is None or cannot be
            imported (:func:`resolve_conv`), or ``conv`` is another layer than the
            recorded default one, whose ``conv_kwargs`` the config holds.
        """
        config = dict(config)
        recorded = config.pop("conv")
        if conv is None and recorded != DEFAULT_CONV:
            conv = resolve_conv(recorded)
        elif conv not in (None, SpatialTransformerConv) and recorded == DEFAULT_CONV and config["conv_kwargs"]:
            # The constructor's message would blame conv_kwargs the caller never passed.
            raise ValueError(
                f"the config records the default layer, SpatialTransformerConv, with conv_kwargs "
                f"{sorted(config['conv_kwargs'])}, which apply to it only: leave conv out (the default "
                "layer is always importable)"
            )
        return cls(**config, conv=conv)

    def reset_parameters(self) -> None:
        self.embedding.reset_parameters()
        for layer in self.layers:
            layer.reset_parameters()
        self.norm.reset_parameters()

    def forward(
        self,
        data: Data | Tensor,
        pos: Tensor | None = None,
        edge_index: Tensor | None = None,
        edge_dist: Tensor | None = None,
        origin: Tensor | None = None,
        *,
        return_attention_weights: bool = False,
    ) -> Tensor | tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """Embed the transcripts of a graph.

        Parameters
        ----------
        data
            A transcript graph (fields ``gene``, ``pos``, ``edge_index`` and
            optionally ``edge_dist``, ``origin``, ``cell``, ``batch``), or the
            ``[N]`` gene tokens, with the graph in the next arguments.
        pos
            ``[N, n_dims]`` coordinates in µm.
        edge_index
            ``[2, E]`` edges, row 0 source, row 1 target.
        edge_dist
            ``[E]`` or ``[E, 1]`` edge lengths in µm, finite and >= 0 (else a
            ValueError, whatever the layer; the layers get them as ``[E]``);
            computed from ``pos`` when None.
        origin
            ``[N, n_dims]`` or ``[n_dims]`` origin of the positional encoding; when
            None, the cell centroids of ``data.cell`` (Data input; per graph of a
            :class:`~torch_geometric.data.Batch`) or the centroid of ``pos``.
        return_attention_weights
            Also return, per block, the ``(edge_index, alpha)`` its layer returns:
            ``alpha`` is ``[E', heads]`` or ``[E']`` on the layer's ``E'`` edges (with
            the self-loops a layer such as ``GATConv`` adds). A layer whose attention
            is not such a pair of tensors raises a TypeError, one of other shapes a
            ValueError.

        Returns
        -------
        ``[N, d_model]`` embeddings, and the list of attention weights when asked.
        """
        return_attention_weights = check_bool("return_attention_weights", return_attention_weights)
        if isinstance(data, Data):
            if pos is not None or edge_index is not None:
                raise ValueError("pass either a Data object or tensors, not both")
            # The origin below failed on a missing pos: 'NoneType' object has no attribute 'size'.
            check_graph_fields(data, ("gene", "pos", "edge_index"), "data")
            gene, pos, edge_index = data.gene, data.pos, data.edge_index
            edge_dist = data.get("edge_dist")
            origin = data.get("origin")
            if origin is None:
                origin = transcript_origin(pos, data.get("cell"), data.get("batch"))
        elif isinstance(data, Tensor):
            gene = data
            if pos is None or edge_index is None:
                raise ValueError("with gene tokens as a tensor, pos and edge_index are required")
        else:
            raise TypeError(f"expected a torch_geometric Data or a gene tensor, got {type(data).__name__}")
        self._check_inputs(gene, pos, edge_index)
        edge_dist = _edge_lengths(pos, edge_index, edge_dist)
        if origin is None:  # the centroid of pos; a mean of no rows would be NaN
            origin = transcript_origin(pos)
        if origin.shape not in ((self.n_dims,), pos.shape):
            raise ValueError(
                f"origin must have shape [{self.n_dims}] or {list(pos.shape)}, got {tuple(origin.shape)}"
            )
        if not bool(torch.isfinite(origin).all()):
            raise ValueError("origin contains NaN or infinite coordinates")

        rel_pos = pos.to(torch.float64) - origin.to(torch.float64)
        x = self.embedding(gene) + self.positional(rel_pos).to(self.embedding.weight.dtype)
        edge_dist = edge_dist.to(x.dtype)
        attentions = []
        for layer in self.layers:
            if return_attention_weights:
                x, attention = layer(x, edge_index, edge_dist, return_attention_weights=True)
                attentions.append(attention)
            else:
                x = layer(x, edge_index, edge_dist)
        x = self.norm(x)
        return (x, attentions) if return_attention_weights else x

    def _check_inputs(self, gene: Tensor, pos: Tensor, edge_index: Tensor) -> None:
        for name, value in (("pos", pos), ("edge_index", edge_index)):
            if not isinstance(value, Tensor):
                raise TypeError(f"{name} must be a tensor, got {type(value).__name__}")
        if gene.dim() != 1 or gene.dtype != torch.long:
            raise TypeError(f"gene must be a 1-D LongTensor, got {gene.dtype} of shape {tuple(gene.shape)}")
        if gene.numel() and (gene.min() < 0 or gene.max() > self.mask_token):
            raise ValueError(
                f"gene tokens must lie in [0, {self.mask_token}] ({self.n_genes} genes + [MASK]), "
                f"got range [{int(gene.min())}, {int(gene.max())}]"
            )
        if pos.shape != (gene.numel(), self.n_dims):
            raise ValueError(
                f"pos must have shape [{gene.numel()}, {self.n_dims}], got {tuple(pos.shape)}"
                + _dims_hint(self.n_dims, pos)
            )
        if not pos.is_floating_point():
            raise TypeError(f"pos must be floating point, got {pos.dtype}")
        if not bool(torch.isfinite(pos).all()):  # every embedding would be NaN
            row = int(torch.nonzero(~torch.isfinite(pos).all(dim=1))[0, 0])
            raise ValueError(f"pos contains NaN or infinite coordinates (first at row {row}: {pos[row].tolist()})")
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(f"edge_index must have shape [2, E], got {tuple(edge_index.shape)}")
        if edge_index.dtype != torch.long:
            raise TypeError(f"edge_index must be int64 (torch.long), got {edge_index.dtype}")
        if edge_index.numel() and (edge_index.min() < 0 or edge_index.max() >= gene.numel()):
            raise ValueError(f"edge_index refers to nodes outside [0, {gene.numel()})")

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(n_genes={self.n_genes}, d_model={self.d_model}, "
            f"n_layers={len(self.layers)}, conv={self.config['conv']})"
        )

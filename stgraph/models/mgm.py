"""Masked gene model: a transcript encoder, its gene vocabulary and the MGM head."""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor
from torch_geometric.data import Data

from .._validation import check_not_one_name, check_real
from .._warnings import warn_user
from ..nn.encoder import ConvFactory, TranscriptEncoder
from ..nn.heads import MaskedGeneHead


class MaskedGeneModel(torch.nn.Module):
    """A :class:`~stgraph.nn.TranscriptEncoder` with a :class:`~stgraph.nn.MaskedGeneHead`.

    Parameters
    ----------
    encoder
        The transcript encoder.
    gene_names
        Gene vocabulary: token ``k`` is ``gene_names[k]``.
    control_genes
        Names in ``gene_names`` that are negative-control probes: never targets
        nor random replacements in training.
    radius
        Radius (µm) of the transcript graph the model was trained on; None where
        unknown.

    Attributes
    ----------
    radius
        The training graph's radius (µm), set by :func:`stgraph.tl.pretrain` and
        saved in checkpoints; None for a model built without one, or loaded from a
        checkpoint written before stgraph recorded it. Where it is known,
        :func:`stgraph.tl.domains`, :func:`stgraph.tl.colocalization` and
        :func:`stgraph.models.evaluate_held_out` warn when they apply the model to a
        graph of another radius.

    Raises
    ------
    TypeError
        If ``encoder`` is not a :class:`~stgraph.nn.TranscriptEncoder`,
        ``gene_names`` or ``control_genes`` is one string (it would be read letter
        by letter), or ``radius`` is not a real number.
    ValueError
        If ``gene_names`` does not hold one unique name per gene of the encoder,
        ``control_genes`` names a gene not in it, or ``radius`` is not positive and
        finite.
    """

    def __init__(
        self,
        encoder: TranscriptEncoder,
        gene_names: Sequence[str],
        control_genes: Sequence[str] = (),
        radius: float | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(encoder, TranscriptEncoder):
            raise TypeError(f"encoder must be a stgraph.nn.TranscriptEncoder, got {type(encoder).__name__}")
        check_not_one_name("gene_names", gene_names)
        check_not_one_name("control_genes", control_genes)
        gene_names = [str(g) for g in gene_names]
        if len(gene_names) != encoder.n_genes:
            raise ValueError(
                f"{len(gene_names)} gene names for an encoder of {encoder.n_genes} genes"
            )
        if len(set(gene_names)) != len(gene_names):
            raise ValueError("gene_names contains duplicates")
        unknown = sorted(set(control_genes) - set(gene_names))
        if unknown:
            raise ValueError(f"control genes not in gene_names: {unknown}")
        self.radius = None if radius is None else check_real("radius", radius)
        self.encoder = encoder
        self.head = MaskedGeneHead(encoder.d_model, encoder.n_genes)
        self.gene_names = gene_names
        self.control_genes = [g for g in gene_names if g in set(control_genes)]
        is_control = torch.tensor([g in set(control_genes) for g in gene_names], dtype=torch.bool)
        self.register_buffer("is_control_gene", is_control, persistent=False)

    @property
    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild the model, without weights."""
        return dict(
            encoder=dict(self.encoder.config),
            gene_names=list(self.gene_names),
            control_genes=list(self.control_genes),
            radius=self.radius,
        )

    @classmethod
    def from_config(cls, config: dict[str, Any], conv: type | ConvFactory | None = None) -> "MaskedGeneModel":
        """Rebuild a model (fresh weights) from :attr:`config`.

        Parameters
        ----------
        config
            A model's :attr:`config`: the encoder's config, the gene names, the
            control genes and the training radius (a config without one, as saved
            before stgraph recorded it, gives ``radius`` None).
        conv
            Layer class or factory of the encoder, as in
            :meth:`stgraph.nn.TranscriptEncoder.from_config`.

        Raises
        ------
        ValueError
            As :meth:`stgraph.nn.TranscriptEncoder.from_config`, for the encoder's layer.
        """
        encoder = TranscriptEncoder.from_config(config["encoder"], conv=conv)
        return cls(encoder, config["gene_names"], config["control_genes"], config.get("radius"))

    def gene_tokens(self, graph: Data) -> Tensor:
        """Tokens of ``graph.gene`` in this model's vocabulary.

        ``graph.gene`` indexes ``graph.gene_names``; genes of the model missing from
        the graph are fine, while a transcript of a gene unknown to the model raises a
        ValueError (the model has no embedding for it). Graphs without
        ``gene_names`` are assumed to share the vocabulary.

        Parameters
        ----------
        graph
            Transcript graph with ``gene`` (and, where known, ``gene_names``).
        """
        names = graph.get("gene_names")
        if names is None or list(names) == self.gene_names:
            return graph.gene
        index = {g: k for k, g in enumerate(self.gene_names)}
        lookup = torch.tensor([index.get(str(g), -1) for g in names], device=graph.gene.device)
        tokens = lookup[graph.gene]
        if (tokens < 0).any():
            unknown = [str(names[k]) for k in torch.unique(graph.gene[tokens < 0]).tolist()]
            raise ValueError(
                f"genes unknown to the model ({len(unknown)} of the data's, {int((tokens < 0).sum())} "
                f"transcripts): {unknown[:10]}; the model embeds only the {len(self.gene_names)} genes it "
                "was pretrained on: leave these genes' transcripts out of the data, or pretrain on this panel"
            )
        return tokens

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        """Gene logits ``[N, n_genes]``; arguments as :meth:`TranscriptEncoder.forward`."""
        return self.head(self.encoder(*args, **kwargs))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.encoder!r}, n_controls={len(self.control_genes)})"


def warn_other_radius(model: Any, graph: Data, graph_name: str = "the graph", alternative: str = "") -> None:
    """Warn when ``model`` (a :class:`MaskedGeneModel`, a :func:`stgraph.tl.pretrain`
    result, or a bare encoder) was trained at a known radius other than ``graph``'s.

    Its distance penalties start from the training radius and it learned contexts of
    that size: on another radius it still runs, on neighbourhoods it never saw.
    Nothing is said where either radius is unknown. ``graph_name`` names the graph
    in the message, ``alternative`` adds a remedy of the caller's own.
    """
    trained = getattr(getattr(model, "model", model), "radius", None)
    radius = graph.get("radius")
    if trained is None or radius is None or math.isclose(float(radius), trained, rel_tol=1e-6):
        return
    warn_user(
        f"the model was pretrained on a graph of radius {trained:g} µm, but {graph_name} has radius "
        f"{float(radius):g} µm: its distance penalties and the contexts it learned are of its own radius; "
        f"build {graph_name} with radius={trained:g}{alternative}, or pretrain the model at "
        f"radius={float(radius):g}"
    )

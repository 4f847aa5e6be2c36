"""Task heads on top of transcript embeddings."""
from __future__ import annotations

import torch
from torch import Tensor

from .._validation import check_int


class MaskedGeneHead(torch.nn.Module):
    r"""Masked-gene-modelling head: predicts the gene of each transcript token.

    BERT's masked-language-model head,

    .. math::

        \mathrm{logits}_i = W_o\, \mathrm{LN}\big(\mathrm{GELU}(W_h h_i + b_h)\big) + b_o,

    with :math:`W_o \in \mathbb{R}^{n_{genes} \times d}`: the ``[MASK]`` token is
    never a prediction.

    Parameters
    ----------
    d_model
        Width of the embeddings.
    n_genes
        Size of the gene vocabulary.
    """

    def __init__(self, d_model: int, n_genes: int) -> None:
        super().__init__()
        self.d_model = check_int("d_model", d_model)
        self.n_genes = check_int("n_genes", n_genes)
        self.transform = torch.nn.Linear(d_model, d_model)
        self.norm = torch.nn.LayerNorm(d_model)
        self.decoder = torch.nn.Linear(d_model, n_genes)

    def reset_parameters(self) -> None:
        self.transform.reset_parameters()
        self.norm.reset_parameters()
        self.decoder.reset_parameters()

    def forward(self, h: Tensor) -> Tensor:
        """Gene logits of transcript embeddings.

        Parameters
        ----------
        h
            ``[N, d_model]`` embeddings.

        Returns
        -------
        ``[N, n_genes]`` logits.

        Raises
        ------
        TypeError
            If ``h`` is not a tensor.
        ValueError
            If ``h`` is not ``[N, d_model]`` (torch's refusal of another width named
            the matrix product, not the head's ``d_model``).
        """
        if not isinstance(h, Tensor):
            raise TypeError(f"h must be a tensor of embeddings, got {type(h).__name__}")
        if h.dim() != 2 or h.size(1) != self.d_model:
            raise ValueError(f"h must have shape [N, d_model] (d_model={self.d_model}), got {tuple(h.shape)}")
        return self.decoder(self.norm(torch.nn.functional.gelu(self.transform(h))))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.d_model}, n_genes={self.n_genes})"

"""BERT-style token corruption and loss for masked gene modelling.

Each selectable token is selected as a target with probability ``rate`` (15 %);
a selected token's input is replaced by ``[MASK]`` with probability 0.8, by a gene
drawn uniformly from the replacement pool with probability 0.1 (which may be its
own gene, as in BERT), and kept unchanged otherwise. The loss is the mean
cross-entropy over the selected tokens only.

Negative-control probes (blanks, ``notarget``) are never selected, and never drawn
as random replacements: their identity is decoding noise, not biology, so a model
should not spend capacity predicting them. They stay in the input as context tokens.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

#: Probabilities of ``[MASK]``, random gene and unchanged for a selected token.
REPLACEMENT_PROBS = (0.8, 0.1, 0.1)


class MaskedTokens(NamedTuple):
    """Corrupted input tokens and the targets to predict."""

    #: ``[N]`` input tokens after corruption.
    input: Tensor
    #: ``[N]`` bool, True where the token is a prediction target.
    selected: Tensor


def mask_tokens(
    gene: Tensor,
    *,
    mask_token: int,
    rate: float = 0.15,
    selectable: Tensor | None = None,
    random_pool: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> MaskedTokens:
    """Select and corrupt tokens for masked gene modelling.

    Parameters
    ----------
    gene
        ``[N]`` true gene tokens.
    mask_token
        Id of the ``[MASK]`` token (the vocabulary size).
    rate
        Probability that a selectable token becomes a target.
    selectable
        ``[N]`` bool, which tokens may be selected; all when None.
    random_pool
        Gene ids that random replacement draws from; all ``[0, mask_token)`` when None.
    generator
        Source of randomness (on the device of ``gene``).

    Returns
    -------
    :class:`MaskedTokens`; ``gene`` itself is not modified.
    """
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"rate must be in (0, 1], got {rate}")
    if gene.dim() != 1:
        raise ValueError(f"gene must be 1-D, got shape {tuple(gene.shape)}")
    n, device = gene.numel(), gene.device
    if random_pool is None:
        random_pool = torch.arange(mask_token, device=device)
    if random_pool.numel() == 0:
        raise ValueError("random_pool is empty")
    selected = torch.rand(n, generator=generator, device=device) < rate
    if selectable is not None:
        if selectable.shape != gene.shape or selectable.dtype != torch.bool:
            raise ValueError("selectable must be a bool tensor shaped like gene")
        selected &= selectable
    action = torch.rand(n, generator=generator, device=device)
    random_gene = random_pool[
        torch.randint(random_pool.numel(), (n,), generator=generator, device=device)
    ]
    p_mask, p_random, _ = REPLACEMENT_PROBS
    to_mask = selected & (action < p_mask)
    to_random = selected & (action >= p_mask) & (action < p_mask + p_random)
    corrupted = torch.where(to_mask, torch.full_like(gene, mask_token), gene)
    corrupted = torch.where(to_random, random_gene, corrupted)
    return MaskedTokens(corrupted, selected)


def masked_gene_loss(logits: Tensor, target: Tensor, selected: Tensor) -> Tensor:
    """Mean cross-entropy of ``logits`` against ``target`` over the selected tokens.

    Returns a zero that still carries gradients when nothing is selected, so that a
    training step never divides by zero.

    Parameters
    ----------
    logits
        ``[N, n_genes]`` gene logits.
    target
        ``[N]`` true gene tokens.
    selected
        ``[N]`` bool, the target tokens (:attr:`MaskedTokens.selected`); not indices.

    Raises
    ------
    ValueError
        If ``selected`` is not a bool tensor shaped like ``target``, or ``logits``
        has another number of rows.
    """
    if selected.dtype != torch.bool or selected.shape != target.shape:
        raise ValueError(
            f"selected must be a bool mask shaped like target {tuple(target.shape)}, got "
            f"{selected.dtype} of shape {tuple(selected.shape)} (indices are not accepted)"
        )
    if logits.size(0) != target.numel():
        raise ValueError("logits, target and selected must describe the same tokens")
    if not selected.any():
        return logits.sum() * 0.0
    return torch.nn.functional.cross_entropy(logits[selected], target[selected])

r"""Which genes are over-represented in each domain.

With ``N`` transcripts, ``n_d`` in domain ``d``, ``n_g`` of gene ``g`` and
``n_{dg}`` of gene ``g`` in domain ``d``:

- ``log2_enrichment`` :math:`= \log_2 \frac{(n_{dg} + 1/2) / n_d}{(n_g + 1/2) / N}`
  (the share of the domain taken by the gene over its share overall; the half
  counts keep absent genes finite);
- ``pval`` :math:`= P(X \ge n_{dg})` with :math:`X \sim \mathrm{Hypergeometric}(N,
  n_g, n_d)`: drawing the domain's transcripts at random from all transcripts;
- ``fdr``: Benjamini-Hochberg over all (domain, gene) rows.

Rows are ordered by domain, then the significant ones (``fdr`` < :data:`SIGNIFICANT_FDR`)
first, each part by decreasing ``log2_enrichment``: with half counts alone a gene
of a single molecule, wherever it falls, has the largest enrichment of its domain
(on the CosMx lung sample 36 genes of 1 to 16 molecules tied at the top, ahead of
one of 1,200 molecules with an fdr of 1e-93), so a domain's leading gene must also
be one its transcripts show to be enriched.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .._validation import check_codes
from ..coloc import benjamini_hochberg

#: Columns of the enrichment table.
ENRICHMENT_COLUMNS = ("domain", "gene", "count", "fraction_of_gene", "log2_enrichment", "pval", "fdr")
#: FDR below which a row ranks among its domain's significant genes.
SIGNIFICANT_FDR = 0.05


def domain_enrichment(labels: np.ndarray, gene: np.ndarray, gene_names) -> pd.DataFrame:
    """Gene enrichment of every domain.

    Parameters
    ----------
    labels
        ``(N,)`` domain code per transcript (``0 .. k - 1``).
    gene
        ``(N,)`` gene code per transcript.
    gene_names
        Name of each gene code.

    Returns
    -------
    One row per domain and gene that each have transcripts (a gene absent from the
    domain included, with ``count`` 0), with columns
    :data:`ENRICHMENT_COLUMNS`, by domain, then the rows with ``fdr`` below
    :data:`SIGNIFICANT_FDR` before the others, each by decreasing ``log2_enrichment``
    (see the module docstring).
    """
    names = pd.Index([str(g) for g in gene_names])
    labels = check_codes("labels", labels)
    gene = check_codes("gene", gene, names.size)
    n_domains = int(labels.max()) + 1 if labels.size else 0
    n_genes = names.size
    count = np.bincount(labels * n_genes + gene, minlength=n_domains * n_genes).reshape(
        n_domains, n_genes
    )
    per_domain = count.sum(axis=1, keepdims=True)
    per_gene = count.sum(axis=0, keepdims=True)
    total = count.sum()
    log2 = np.log2(((count + 0.5) / np.maximum(per_domain, 1)) / ((per_gene + 0.5) / max(total, 1)))
    pval = stats.hypergeom.sf(count - 1, total, per_gene, per_domain)
    # A gene or a domain without transcripts has no share to compare: no row, no test.
    present = (per_gene > 0) & (per_domain > 0)
    table = pd.DataFrame(
        {
            "domain": np.repeat(np.arange(n_domains), n_genes),
            "gene": pd.Categorical.from_codes(np.tile(np.arange(n_genes), n_domains), categories=names),
            "count": count.ravel(),
            "fraction_of_gene": (count / np.maximum(per_gene, 1)).ravel(),
            "log2_enrichment": log2.ravel(),
            "pval": np.clip(pval, 0.0, 1.0).ravel(),
        }
    )[present.ravel()]
    table["fdr"] = benjamini_hochberg(table["pval"].to_numpy())
    table["_weak"] = table["fdr"] >= SIGNIFICANT_FDR
    table = table.sort_values(["domain", "_weak", "log2_enrichment"], ascending=[True, True, False], kind="stable")
    return table.reset_index(drop=True)[list(ENRICHMENT_COLUMNS)]

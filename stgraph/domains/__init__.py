"""Subcellular domains: transcript features, clustering, enrichment and outlines."""
from ._cluster import DomainClustering, cluster_domains
from ._enrichment import ENRICHMENT_COLUMNS, domain_enrichment
from ._features import (
    CellComposition,
    cell_composition,
    composition_components,
    neighbourhood_counts,
    neighbourhood_weights,
    predicted_composition_components,
    standardised_block,
)
from ._polygons import POLYGON_COLUMNS, domain_polygons

__all__ = [
    "CellComposition",
    "DomainClustering",
    "ENRICHMENT_COLUMNS",
    "POLYGON_COLUMNS",
    "cluster_domains",
    "domain_enrichment",
    "domain_polygons",
    "cell_composition",
    "composition_components",
    "neighbourhood_counts",
    "neighbourhood_weights",
    "predicted_composition_components",
    "standardised_block",
]

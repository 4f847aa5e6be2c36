"""Subcellular domains: transcript features, clustering, enrichment and outlines."""
from ._cluster import DomainClustering, cluster_domains
from ._enrichment import ENRICHMENT_COLUMNS, domain_enrichment
from ._features import domain_features, neighbourhood_composition
from ._polygons import POLYGON_COLUMNS, domain_polygons

__all__ = [
    "DomainClustering",
    "ENRICHMENT_COLUMNS",
    "POLYGON_COLUMNS",
    "cluster_domains",
    "domain_enrichment",
    "domain_features",
    "domain_polygons",
    "neighbourhood_composition",
]

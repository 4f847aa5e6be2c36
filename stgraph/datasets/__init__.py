"""stgraph.datasets."""

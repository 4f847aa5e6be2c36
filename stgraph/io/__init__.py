"""stgraph.io."""

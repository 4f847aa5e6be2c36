"""stgraph.graph."""

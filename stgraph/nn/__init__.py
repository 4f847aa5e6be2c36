"""stgraph.nn."""

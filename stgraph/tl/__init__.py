"""stgraph.tl."""

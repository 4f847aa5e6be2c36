"""stgraph.pl."""

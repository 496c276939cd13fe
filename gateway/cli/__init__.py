"""Command line: one module per command, thin over the same service functions."""

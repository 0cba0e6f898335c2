"""redkit for django: one module per capability (see the docs page of each capability)."""

"""``python -m pipeline``: one module per command (``main`` assembles them)."""

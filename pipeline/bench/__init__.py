"""The benchmark: ``ops/bench`` (``python -m pipeline.bench``)."""

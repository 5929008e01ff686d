"""``WORKER_MODULES=pipeline.bench.worker_plugin``: the benchmark's worker reads through the
probe (``pipeline.bench.probe``); importing this module installs it."""

from pipeline.bench.probe import install

install()

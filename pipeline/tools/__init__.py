"""Tooling around the service: a local stack of worker and API, an HTTP client of the API,
peak memory of process trees (the demo, the benchmark, the end-to-end tests)."""

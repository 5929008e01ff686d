"""MES Trace Pipeline: traces semiconductor lots through MES history in bounded memory.

The vocabulary and settings live here (``config``, ``errors``, ``domains``, ``params``,
``request``, ``rows``, ``workcenters``); then, bottom up: ``sources`` (the warehouse), ``stages``
(plain functions over a source), ``engine`` (jobs in Redis and the Dramatiq runtime around the
stages), and the edges: ``actors`` (``dramatiq pipeline.actors``), ``cli`` (``python -m
pipeline``), ``tools``, ``demo``, ``bench``. The HTTP API is the ``http_api`` package beside it.
"""

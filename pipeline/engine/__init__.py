"""The staged engine: jobs in Redis (state, keys, checkpoints, pages, registry, leases, events,
metrics, status), the Dramatiq runtime around them, and the job steps that wrap the stage
functions (``steps``), checkpointing their output so a restarted stage skips finished batches.

``pipeline.actors`` wraps the steps in Dramatiq actors; ``pipeline.engine.runtime`` is the glue.
"""

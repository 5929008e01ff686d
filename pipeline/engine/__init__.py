"""The staged engine: each stage of a job as a plain function over a ``StageContext`` (job, store,
registry, source), checkpointing its output so a restarted stage skips finished batches.

``pipeline.actors`` wraps these functions in Dramatiq actors; ``pipeline.worker`` is the glue.
"""

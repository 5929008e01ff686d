"""The stages as plain functions over a ``Source`` (no Redis, no Dramatiq): seed resolve,
lineage, events, and the mid-section-defect analysis (``msd``). The in-process runner and the
engine's job steps both call them."""

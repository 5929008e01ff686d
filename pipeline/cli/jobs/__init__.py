"""``python -m pipeline jobs ...``: the operator's job tooling, against the configured Redis.

``list`` (filter by state, age, profile), ``show ID`` (state, stages with progress, errors,
parts, key TTLs), ``retry ID`` / ``retry --failed --since 1h`` (resume at the failed stage,
keeping finished stages and batches), ``cancel ID``, ``purge`` (release what expired or was
cancelled: ``UNLINK``, non-blocking), ``requeue-dead`` (our actors' messages in Dramatiq's
dead-letter queues, Redis broker), ``watch`` (tail the job event stream).

Tables for people by default, ``--json`` for scripts. Exit codes (``cli/exit_codes.py``): 0
done; 1 something was refused (e.g. retry of a job that is not failed); 2 bad usage; 5 job not
found; 6 Redis or the broker unavailable.

One module per verb family (``listing``, ``retry_cancel``, ``purge``, ``dead_letters``,
``watch``), what they share in ``tool``, their flags in ``parser``.
"""

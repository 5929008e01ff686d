"""The HTTP layer (Falcon). Named ``http_api``, not ``http``: a top-level package called ``http``
would replace the standard library's ``http`` in every process started from the repo root
(gunicorn, dramatiq, pytest), and Falcon itself imports ``http``."""

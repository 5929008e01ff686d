"""``python -m pipeline ...``: see ``pipeline.cli.main``."""

from pipeline.cli.main import main

raise SystemExit(main())

"""``python -m roomserver``: the same as the ``roomserver`` command."""

from .cli import main

raise SystemExit(main())

"""``python -m asgi_guard``: the command line."""

from .cli import main

raise SystemExit(main())

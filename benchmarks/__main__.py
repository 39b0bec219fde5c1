"""``python -m benchmarks``: see benchmarks/README.md."""

from .cli import main

raise SystemExit(main())

"""`python -m app` is the `convscope` command."""

from app.cli import main

raise SystemExit(main())

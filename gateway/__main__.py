"""python -m gateway -> the CLI."""

from gateway.cli.main import main

raise SystemExit(main())

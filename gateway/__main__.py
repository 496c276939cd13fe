"""python -m gateway -> the CLI."""

from gateway.cli.main import main

# guarded: the consent importer's parser process (multiprocessing "spawn") imports this
# module again under another name, and must not run the CLI a second time
if __name__ == "__main__":
    raise SystemExit(main())

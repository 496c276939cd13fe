"""The `tokuden` / `python -m gateway` root command: parse, dispatch, map errors to exit codes.

Exit codes (contract.md): 0 success, 1 the check found violations or the
operation was refused, 2 bad usage or bad config — always with a message that
names the key or argument, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from gateway import __version__
from gateway.config import default_path
from gateway.errors import ConfigError, GatewayError, PackError, StoreUnavailable

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2

# Command -> the module that registers it, in the order `tokuden --help` lists them.
# Only the named command's module is imported: all of them together take ~1 s to
# import (the SMTP server, the web app, DKIM, asyncpg), which every command paid.
COMMANDS: dict[str, str] = {
    "serve": "cmd_serve",
    "user": "cmd_user",
    "log": "cmd_log",
    "migrate": "cmd_migrate",
    "consent": "cmd_consent",
    "suppression": "cmd_suppression",
    "reputation": "cmd_reputation",
    "check": "cmd_check",
    "copy-store": "cmd_copy_store",
    "token": "cmd_token",
    "report": "cmd_report",
    "dns": "cmd_dns",
    "dkim": "cmd_dns",
    "secret": "cmd_dns",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _modules_for(argv: Sequence[str] | None) -> list[str]:
    """The command modules the parser needs: the named command's, or all (help, typos)."""
    args = sys.argv[1:] if argv is None else argv
    # The root parser's own options (--help, --version) take no value, so the first
    # word that is not an option is the command.
    word = next((a for a in args if not a.startswith("-")), None)
    if word in COMMANDS:
        return [COMMANDS[word]]
    return list(dict.fromkeys(COMMANDS.values()))


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The root parser, with only the command that argv (default: sys.argv) names."""
    parser = _Parser(
        prog="tokuden",
        description="Compliance gateway for Japanese marketing mail (特定電子メール法): "
        "consent, display items, sender authentication, DKIM signing.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = _Parser(add_help=False)
    common.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help=f"config file (default: $GATEWAY_CONFIG, then ./gateway.toml; now {default_path()})",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in _modules_for(argv):
        importlib.import_module(f"gateway.cli.{name}").register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if getattr(args, "config", None) is None:
        args.config = default_path()
    try:
        result: int = args.func(args)
        return result
    except (ConfigError, PackError) as exc:
        print(f"tokuden: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StoreUnavailable as exc:
        print(f"tokuden: store unavailable: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except GatewayError as exc:
        print(f"tokuden: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        print("tokuden: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so plainly; the traceback is for developers
        if os.environ.get("TOKUDEN_DEBUG"):
            raise
        print(
            f"tokuden: internal error ({type(exc).__name__}: {exc}); "
            "rerun with TOKUDEN_DEBUG=1 for the traceback and report it",
            file=sys.stderr,
        )
        return 70

"""The `tokuden` / `python -m gateway` root command: parse, dispatch, map errors to exit codes.

Exit codes (contract.md): 0 success, 1 the check found violations or the
operation was refused, 2 bad usage or bad config — always with a message that
names the key or argument, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from gateway import __version__
from gateway.cli import (
    cmd_check,
    cmd_consent,
    cmd_copy_store,
    cmd_dns,
    cmd_log,
    cmd_migrate,
    cmd_report,
    cmd_serve,
    cmd_token,
    cmd_user,
)
from gateway.config import default_path
from gateway.errors import ConfigError, GatewayError, PackError, StoreUnavailable

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
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
    for module in (
        cmd_serve,
        cmd_user,
        cmd_log,
        cmd_migrate,
        cmd_consent,
        cmd_check,
        cmd_copy_store,
        cmd_token,
        cmd_report,
        cmd_dns,
    ):
        module.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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

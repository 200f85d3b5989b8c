"""The `vaxvault` command: one small module per command group, each registering its parsers.

Every command exits 0 on success, 1 on a failure (one clear line on stderr), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from api.cli import assets, backup_commands, db, dev, restore_commands, schema, serve, token
from api.errors import VaxvaultError
from api.settings import load_settings

COMMAND_GROUPS = (dev, serve, db, token, schema, backup_commands, restore_commands, assets)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"vaxvault: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vaxvault", description="National vaccination registry service")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    for group in COMMAND_GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, run one command, and turn every expected failure into exit code 1."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        settings = load_settings()
        # `dev` starts (and later stops) the embedded database itself; every other command
        # run beside it finds that database and the default repository on its own.
        if args.handler is not dev.run:
            settings = dev.beside_dev(settings)
        return int(args.handler(args, settings) or 0)
    except VaxvaultError as exc:
        print(f"vaxvault: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vaxvault: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())

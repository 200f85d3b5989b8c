"""The `vaxvault` command: one small module per command group, each registering its parsers.

Every command exits 0 on success, 1 on a failure (one clear line on stderr), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from api.cli.beside_dev import beside_dev
from api.errors import VaxvaultError
from api.settings import load_settings

# Command -> the module of its group, imported when that command runs (all of them for help or a
# bad command): each group imports its whole stack, and importing all eight cost `vaxvault backup
# run` 0.34 s of start-up where its own group needs 0.14 s (python -X importtime).
COMMAND_GROUPS = {"dev": "dev", "serve": "serve", "db": "db", "token": "token", "schema": "schema",
                  "backup": "backup_commands", "restore": "restore_commands", "assets": "assets"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"vaxvault: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of `command` alone when it names a group, else of every command."""
    parser = _Parser(prog="vaxvault", description="National vaccination registry service")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    for name, module in COMMAND_GROUPS.items():
        if command not in COMMAND_GROUPS or command == name:
            importlib.import_module(f"api.cli.{module}").register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, run one command, and turn every expected failure into exit code 1."""
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(words[0] if words else None)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        settings = load_settings()
        # `dev` starts (and later stops) the embedded database itself; every other command
        # run beside it finds that database and the default repository on its own.
        if args.command != "dev":
            settings = beside_dev(settings)
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

"""`vaxvault schema export`: write the SDL that portals read (schema.graphql)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from api.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:
    schema = commands.add_parser("schema", help="GraphQL schema tools")
    actions = schema.add_subparsers(dest="schema_command", metavar="ACTION")
    actions.required = True
    export = actions.add_parser("export", help="print or write the SDL")
    export.add_argument("--output", type=Path, help="file to write (default: standard output)")
    export.set_defaults(handler=run_export)


def sdl() -> str:
    from api.schema import schema

    return schema.as_str() + "\n"


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    text = sdl()
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0

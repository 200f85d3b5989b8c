"""`vaxvault assets fetch`: GraphiQL's pinned files from the npm registry, checked by hash."""

from __future__ import annotations

import argparse
from pathlib import Path

from api.browser import assets
from api.cli.output import add_json_flag, emit
from api.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("assets", help="GraphiQL's files (pinned npm packages)")
    actions = group.add_subparsers(dest="assets_command", metavar="ACTION")
    actions.required = True
    fetch = actions.add_parser("fetch", help="npm pack the pinned packages, check their hashes, "
                                             "and keep the files GraphiQL needs")
    fetch.add_argument("--dest", type=Path, default=assets.VENDOR_DIR,
                       help="where to put them (default: the directory vaxvault serves)")
    fetch.add_argument("--npm", default="npm", help="the npm executable")
    add_json_flag(fetch)
    fetch.set_defaults(handler=run_fetch)


def run_fetch(args: argparse.Namespace, settings: Settings) -> int:
    fetched = assets.fetch(args.dest, args.npm)
    text = (f"fetched and checked {', '.join(fetched)} into {args.dest}" if fetched
            else f"GraphiQL's files in {args.dest} are present and match their pinned hashes")
    emit(args, text, {"fetched": fetched, "dest": str(args.dest)})
    return 0

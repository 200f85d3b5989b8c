"""`vaxvault token`: mint a signed token for development and operations."""

from __future__ import annotations

import argparse

from api.auth import mint_token, signing_secret
from api.cli.output import add_json_flag, emit
from api.errors import AuthError
from api.principal import Role
from api.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("token", help="mint a signed HS256 token")
    parser.add_argument("--role", required=True,
                        choices=[r.value for r in Role if r is not Role.PUBLIC])
    parser.add_argument("--sub")
    parser.add_argument("--center-id", type=int)
    parser.add_argument("--district-id", type=int)
    parser.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    add_json_flag(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    role = Role(args.role)
    sub = args.sub or (None if role is Role.RECIPIENT else f"{role.value}-cli")
    try:
        token = mint_token(signing_secret(settings), role, sub=sub, center_id=args.center_id,
                           district_id=args.district_id, ttl_s=args.ttl,
                           audience=settings.jwt_audience, issuer=settings.jwt_issuer)
    except AuthError as exc:
        raise AuthError(f"cannot mint that token: {exc}") from exc
    emit(args, token, {"token": token, "role": role.value})
    return 0

"""Refusals a client can act on. Each carries the GraphQL `extensions.code` it is shown with;
anything else that escapes a resolver is masked."""

from __future__ import annotations

from typing import Any

from api.errors import VaxvaultError


class Refusal(VaxvaultError):
    code = "BAD_REQUEST"

    @property
    def extensions(self) -> dict[str, Any]:
        return {"code": self.code}


class Forbidden(Refusal):
    """The role may not see this field or call this root field."""

    code = "FORBIDDEN"


class NotFound(Refusal):
    """No such row in the principal's scope (whether it exists elsewhere is not said)."""

    code = "NOT_FOUND"


class BadUserInput(Refusal):
    """An argument is malformed or out of range."""

    code = "BAD_USER_INPUT"

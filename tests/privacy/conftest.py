from tests.api.conftest import cast, owner, pool

__all__ = ["cast", "owner", "pool"]

"""Trusted documents compiled at startup: parsed, validated and planned once, and kept."""

from __future__ import annotations

from api.compiled.compiler import Compiler, Prepared
from api.observability import log_event
from api.trusted_documents import Manifest


def prepare_trusted(compiler: Compiler, manifest: Manifest) -> Prepared:
    """Compile every manifest document (SettingsError for one that does not validate) and say
    in the log which operations strawberry will answer, and why."""
    prepared = compiler.prepare(manifest.documents)
    log_event("trusted documents compiled", documents=len(manifest.documents),
              compiled_operations=len(prepared.compiled),
              served_by_strawberry=prepared.strawberry)
    return prepared

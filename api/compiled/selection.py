"""Field collection for one operation: fragments, inline fragments, @include/@skip and aliases
merged into a tree of response keys, as graphql-core's executor would see it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    BooleanValueNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)


class Uncompilable(Exception):
    """The operation uses something the compiler does not cover: serve it with strawberry."""


@dataclass(frozen=True)
class Selected:
    """One response key: the field it resolves, the nodes that asked for it, its sub-keys."""

    key: str
    name: str
    nodes: tuple[FieldNode, ...]
    children: tuple[Selected, ...]

    @property
    def node(self) -> FieldNode:
        return self.nodes[0]

    def child_names(self) -> set[str]:
        return {c.name for c in self.children}


def directive_variables(document_nodes: list[Any]) -> tuple[str, ...]:
    """Names of variables that @include/@skip read: they change the shape, so they key the plan."""
    names: set[str] = set()

    def walk(selection_set: SelectionSetNode | None) -> None:
        if selection_set is None:
            return
        for selection in selection_set.selections:
            for directive in selection.directives or ():
                for argument in directive.arguments or ():
                    if isinstance(argument.value, VariableNode):
                        names.add(argument.value.name.value)
            walk(getattr(selection, "selection_set", None))

    for definition in document_nodes:
        walk(definition.selection_set)
    return tuple(sorted(names))


def _included(node: Any, variables: Mapping[str, Any]) -> bool:
    for directive in node.directives or ():
        name = directive.name.value
        if name not in ("include", "skip"):
            raise Uncompilable(f"directive @{name}")
        (argument,) = directive.arguments
        value = argument.value
        flag = variables.get(value.name.value) if isinstance(value, VariableNode) else \
            isinstance(value, BooleanValueNode) and value.value
        if (name == "include") != bool(flag):
            return False
    return True


def collect(selection_set: SelectionSetNode | None, fragments: Mapping[str, FragmentDefinitionNode],
            variables: Mapping[str, Any]) -> tuple[Selected, ...]:
    """The response keys of `selection_set` in first-seen order, sub-selections merged."""
    grouped: dict[str, list[FieldNode]] = {}

    def gather(selections: SelectionSetNode | None) -> None:
        for selection in selections.selections if selections else ():
            if not _included(selection, variables):
                continue
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                grouped.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                # Every type the compiler reaches is an object type: a valid condition names it.
                gather(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                gather(fragments[selection.name.value].selection_set)

    gather(selection_set)
    out = []
    for key, nodes in grouped.items():
        merged = SelectionSetNode(selections=tuple(
            s for n in nodes if n.selection_set for s in n.selection_set.selections))
        children = collect(merged, fragments, variables) if any(n.selection_set for n in nodes) \
            else ()
        out.append(Selected(key=key, name=nodes[0].name.value, nodes=tuple(nodes),
                            children=children))
    return tuple(out)


def operation_of(definitions: list[Any], name: str | None) -> OperationDefinitionNode:
    operations = [d for d in definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        if len(operations) != 1:
            raise Uncompilable("no single operation")
        return operations[0]
    for operation in operations:
        if operation.name and operation.name.value == name:
            return operation
    raise Uncompilable(f"no operation {name}")

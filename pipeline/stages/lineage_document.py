"""The lineage document of the contract, read from a ``Lineage`` graph one top-level key at a
time: scalars, or ``MapPart`` / ``ListPart`` streams read from the graph's scratch database while
they are consumed, so a caller that stores each part as it comes (the engine's lineage step)
never holds the document, or even one part. ``payload`` builds the whole document as one dict
(the in-process runner, small traces and tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import Any

from pipeline.stages.lineage_graph import MERGE, Lineage

#: Keys the contract lets a backward lineage document leave out when they are empty. Never
#: ``parent_map``: the reverse tree is drawn from it alone (an empty graph: ``{}``).
OPTIONAL_KEYS = frozenset(("seed_roots", "names", "merge_edges", "nodes", "edges"))


class MapPart:
    """A map-valued part of the lineage document, as ``(key, value)`` pairs in key order,
    produced while it is read (iterate it once)."""

    def __init__(self, items: Iterator[tuple[str, Any]]) -> None:
        self.items = items

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return self.items


class ListPart:
    """A list-valued part of the lineage document, produced while it is read (iterate once)."""

    def __init__(self, items: Iterator[Any]) -> None:
        self.items = items

    def __iter__(self) -> Iterator[Any]:
        return self.items


def payload_parts(graph: Lineage, only: frozenset[str] | None = None) -> Iterator[tuple[str, Any]]:
    """The contract's lineage data one top-level key at a time (see the module docstring).
    Consume each part before asking for the next. Optional keys (backward) are left out when
    empty. Backward ``roots`` are the seeds; forward ``roots`` are the tops of the tree (the
    nodes no ``children_map`` link points to: wafers in the query tool's trees). Forward adds
    ``descendants`` per seed (an extension: merges included, which ``children_map`` leaves out
    by contract). ``only``: of the map and list fields, these alone (the others are never
    read from the graph); the scalars all the same."""
    parts = _backward_parts(graph) if graph.backward else _forward_parts(graph)
    optional = OPTIONAL_KEYS if graph.backward else frozenset()
    for key, value in parts:
        if only is not None and key not in only and isinstance(value, (MapPart, ListPart, dict)):
            continue
        if key in optional and isinstance(value, (MapPart, ListPart)):
            value = _unless_empty(value)
        if value or key not in optional:
            yield key, value


def payload(graph: Lineage) -> dict[str, Any]:
    """The whole lineage document as one dict (for small traces and tests)."""
    document: dict[str, Any] = {}
    for key, value in payload_parts(graph):
        if isinstance(value, MapPart):
            value = dict(value)
        elif isinstance(value, ListPart):
            value = list(value)
        document[key] = value
    return document


def _backward_parts(graph: Lineage) -> Iterator[tuple[str, Any]]:
    yield "stage", "lineage"
    yield "ancestors", MapPart(graph.related_per_seed())
    yield "merges", {}
    yield "total_nodes", graph.node_count()
    yield "total_ancestor_count", graph.distinct_related()
    yield "roots", ListPart(graph.seed_ids())
    yield "seed_roots", MapPart(graph.seed_roots())
    yield "parent_map", MapPart(graph.grouped_links(None))
    yield "merge_edges", MapPart(graph.grouped_links(MERGE))
    yield from _common_parts(graph)


def _forward_parts(graph: Lineage) -> Iterator[tuple[str, Any]]:
    yield "stage", "lineage"
    yield "roots", ListPart(graph.tops())
    yield "children_map", MapPart(graph.children_map())
    yield "leaf_serials", MapPart(graph.leaf_serials())
    yield "total_nodes", graph.node_count()
    yield "descendants", MapPart(graph.related_per_seed())
    yield from _common_parts(graph)


def _common_parts(graph: Lineage) -> Iterator[tuple[str, Any]]:
    yield "names", MapPart(graph.names())
    yield "nodes", MapPart(_nodes(graph))
    yield "edges", ListPart(_edges(graph))


def _nodes(graph: Lineage) -> Iterator[tuple[str, dict[str, Any]]]:
    for cid, name, order, wafer, node_type in graph.nodes():
        yield (
            cid,
            {
                "container_id": cid,
                "container_name": name,
                "mfgorder_name": order,
                "wafer_lot": wafer,
                "node_type": node_type,
            },
        )


def _edges(graph: Lineage) -> Iterator[dict[str, str]]:
    for parent, child, edge in graph.edges():
        yield {"from_cid": parent, "to_cid": child, "edge_type": edge}


def _unless_empty(part: MapPart | ListPart) -> MapPart | ListPart | None:
    """The part, or ``None`` when it has no item (peeks at its first one)."""
    items = iter(part)
    for first in items:
        rest: Iterator[Any] = chain([first], items)
        return MapPart(rest) if isinstance(part, MapPart) else ListPart(rest)
    return None

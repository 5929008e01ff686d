"""Stage 2, lineage: the split/merge genealogy around the seeds, backward or forward.

Breadth-first by frontier: each level is one batched lookup per relation (IN lists of <= 1000
ids), so a level of 100K lots costs ~100 queries per relation, not 100K. Both relations are
followed to the depth limit (the old system expanded merges one level only):

- split: ``DW_MES_CONTAINER.SPLITFROMID`` (child -> parent);
- merge: ``DW_MES_PJ_COMBINEDASSYLOTS`` (``CONTAINERID`` source lot -> ``LOTID`` combined lot).

A visited set makes cycles harmless (the edge that closes a cycle is kept, its target is not
expanded again). Memory is proportional to the nodes and edges of the graph, never to events.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pipeline import domains
from pipeline.config import DEFAULT_LINEAGE_MAX_DEPTH
from pipeline.errors import InvalidInput
from pipeline.rows import clean_values
from pipeline.sources.base import Source

SPLIT = "split"
MERGE = "merge"
EDGE_SPLIT_FROM = "split_from"
EDGE_MERGE_SOURCE = "merge_source"
EDGE_GD_REWORK = "gd_rework_source"


@dataclass(frozen=True, slots=True)
class Node:
    """What the warehouse says about a container (all ``None`` for an id with no row)."""

    name: str | None = None
    mfgorder: str | None = None
    wafer: str | None = None
    objecttype: str | None = None

    @property
    def node_type(self) -> str:
        """``GD`` > ``GC`` > ``GA`` (work order or name prefix) > ``LOT`` > ``UNKNOWN``."""
        for prefix in ("GD", "GC", "GA"):
            if (self.mfgorder or "").upper().startswith(prefix) or (
                self.name or ""
            ).upper().startswith(prefix):
                return prefix
        return "LOT" if self.objecttype == "LOT" else "UNKNOWN"


UNKNOWN_NODE = Node()
#: Keys the contract lets a backward lineage document leave out when they are empty.
OPTIONAL_KEYS = frozenset(("seed_roots", "names", "parent_map", "merge_edges", "nodes", "edges"))


class Lineage:
    """The graph found around ``seeds``. ``links[a]`` maps each next node (parent when backward,
    child when forward) to the relation (``split``/``merge``)."""

    def __init__(self, direction: str, seeds: list[str], max_depth: int) -> None:
        self.direction = direction
        self.seeds = seeds
        self.max_depth = max_depth
        self.nodes: dict[str, Node] = {}
        self.links: dict[str, dict[str, str]] = {}
        self.serials: dict[str, set[str]] = {}  # forward: finished serials per lot

    @property
    def backward(self) -> bool:
        return self.direction == domains.BACKWARD

    # ---- building ------------------------------------------------------------------------
    def link(self, start: str, end: str, kind: str) -> None:
        """Record ``start -> end`` (first relation seen wins: split before merge)."""
        if start != end:
            self.links.setdefault(start, {}).setdefault(end, kind)

    def edges(self) -> Iterable[tuple[str, str, str]]:
        """Every edge as ``(parent, child, relation)``, whatever the direction."""
        for start, ends in self.links.items():
            for end, kind in ends.items():
                yield (end, start, kind) if self.backward else (start, end, kind)

    def node(self, cid: str) -> Node:
        return self.nodes.get(cid) or UNKNOWN_NODE

    # ---- reading -------------------------------------------------------------------------
    def reach(self, seed: str) -> dict[str, int]:
        """Nodes reachable from ``seed`` within the depth limit, with their distance (seed: 0)."""
        dist = {seed: 0}
        queue = deque([seed])
        while queue:
            cid = queue.popleft()
            if dist[cid] >= self.max_depth:
                continue
            for nxt in self.links.get(cid, ()):
                if nxt not in dist:
                    dist[nxt] = dist[cid] + 1
                    queue.append(nxt)
        return dist

    def related(self, seed: str) -> list[str]:
        """Sorted ancestors (backward) or descendants (forward) of ``seed``, itself excluded."""
        return sorted(c for c in self.reach(seed) if c != seed)

    def edge_type(self, parent: str, child: str, kind: str) -> str:
        if kind == MERGE:
            return EDGE_MERGE_SOURCE
        if self.node(child).node_type == "GD" and self.node(parent).node_type != "GD":
            return EDGE_GD_REWORK
        return EDGE_SPLIT_FROM

    def _common(self) -> Iterator[tuple[str, Any]]:
        yield "names", {cid: n.name for cid, n in sorted(self.nodes.items()) if n.name}
        yield (
            "nodes",
            {
                cid: {
                    "container_id": cid,
                    "container_name": n.name,
                    "mfgorder_name": n.mfgorder,
                    "wafer_lot": n.wafer,
                    "node_type": n.node_type,
                }
                for cid, n in sorted(self.nodes.items())
            },
        )
        yield (
            "edges",
            [
                {"from_cid": p, "to_cid": c, "edge_type": self.edge_type(p, c, k)}
                for p, c, k in sorted(self.edges())
            ],
        )

    def _backward_parts(self) -> Iterator[tuple[str, Any]]:
        ancestors: dict[str, list[str]] = {}
        seed_roots: dict[str, str] = {}
        distinct: set[str] = set()
        for seed in self.seeds:
            dist = self.reach(seed)
            ancestors[seed] = sorted(c for c in dist if c != seed)
            distinct.update(ancestors[seed])
            # The farthest ancestor without parents (the wafer lot's root); ties: smallest id.
            tops = [c for c in dist if not self.links.get(c)]
            root = min(tops, key=lambda c: (-dist[c], c)) if tops else seed
            seed_roots[seed] = self.node(root).name or root
        distinct.difference_update(self.seeds)
        yield "stage", "lineage"
        yield "ancestors", ancestors
        del ancestors
        yield "merges", {}
        yield "total_nodes", len(self.nodes)
        yield "total_ancestor_count", len(distinct)
        yield "roots", list(self.seeds)
        yield "seed_roots", seed_roots
        yield "parent_map", {c: sorted(ps) for c, ps in sorted(self.links.items()) if ps}
        yield (
            "merge_edges",
            {
                c: sorted(p for p, k in ps.items() if k == MERGE)
                for c, ps in sorted(self.links.items())
                if any(k == MERGE for k in ps.values())
            },
        )
        yield from self._common()

    def _forward_parts(self) -> Iterator[tuple[str, Any]]:
        children_map = {
            p: sorted(c for c, k in cs.items() if k == SPLIT)
            for p, cs in sorted(self.links.items())
            if any(k == SPLIT for k in cs.values())
        }
        has_parent = {c for cs in children_map.values() for c in cs}
        leaves = [c for c in sorted(self.nodes) if c not in children_map]
        yield "stage", "lineage"
        yield "roots", [c for c in sorted(self.nodes) if c not in has_parent]
        yield "children_map", children_map
        del children_map, has_parent
        yield "leaf_serials", {c: sorted(self.serials[c]) for c in leaves if self.serials.get(c)}
        yield "total_nodes", len(self.nodes)
        yield "descendants", {seed: self.related(seed) for seed in self.seeds}
        yield from self._common()

    def payload_parts(self) -> Iterator[tuple[str, Any]]:
        """The contract's lineage data one top-level key at a time, each built only when asked
        for, so a caller that stores and drops each part never holds the whole document.
        Optional keys (backward) are left out when empty. Forward adds ``descendants`` per seed (an
        extension: merges included, which ``children_map`` leaves out by contract)."""
        parts = self._backward_parts() if self.backward else self._forward_parts()
        optional = OPTIONAL_KEYS if self.backward else frozenset()
        for key, value in parts:
            if value or key not in optional:
                yield key, value

    def payload(self) -> dict[str, Any]:
        """The whole lineage document (``payload_parts`` as one dict)."""
        return dict(self.payload_parts())

    def all_cids(self) -> list[str]:
        """Seeds first, then every other node of the graph (the events stage's input)."""
        seed_set = set(self.seeds)
        return list(self.seeds) + sorted(c for c in self.nodes if c not in seed_set)


def trace_lineage(
    source: Source,
    seeds: Iterable[object],
    direction: str,
    *,
    max_depth: int = DEFAULT_LINEAGE_MAX_DEPTH,
) -> Lineage:
    """Walk the genealogy of ``seeds`` ``direction`` (``backward``/``forward``) to ``max_depth``.

    Raises ``InvalidInput`` for no seeds or a bad direction; source errors pass through.
    """
    seed_list = clean_values(seeds)
    if not seed_list:
        raise InvalidInput("container_ids is empty", field="container_ids")
    if direction not in domains.DIRECTIONS:
        raise InvalidInput(
            f"direction must be backward or forward, got {direction!r}", field="direction"
        )
    if max_depth < 0:
        raise InvalidInput("max_depth must not be negative", field="max_depth")
    graph = Lineage(direction, seed_list, max_depth)
    step = _step_backward if graph.backward else _step_forward
    frontier, seen, depth = seed_list, set(seed_list), 0
    while frontier:
        expand = depth < max_depth
        found = step(source, graph, frontier, expand)
        if not expand:
            if not graph.backward:
                _serials_of_unexpanded(source, graph, frontier)
            break
        frontier = [c for c in dict.fromkeys(found) if c not in seen]
        seen.update(frontier)
        depth += 1
    if not graph.backward:
        _serials_of_finished_lots(source, graph)
    return graph


def _record_nodes(graph: Lineage, rows: Iterable[tuple[Any, ...]]) -> Iterable[tuple[str, str]]:
    """Store node rows ``(CID, SPLITFROMID, NAME, ORDER, WAFER, TYPE)``; yield (cid, parent)."""
    for cid, parent, name, order, wafer, objecttype in rows:
        graph.nodes[cid] = Node(name, order, wafer, objecttype)
        yield cid, parent


def _step_backward(source: Source, graph: Lineage, frontier: list[str], expand: bool) -> list[str]:
    found: list[str] = []
    for batch in source.query_in("lineage/containers", "cids", frontier):
        for cid, parent in _record_nodes(graph, batch.rows):
            if expand and parent and parent != cid:
                graph.link(cid, parent, SPLIT)
                found.append(parent)
    for cid in frontier:
        graph.nodes.setdefault(cid, UNKNOWN_NODE)
    if expand:
        for batch in source.query_in("lineage/merge_sources", "cids", frontier):
            for src, target, _serial in batch.rows:
                if src != target:
                    graph.link(target, src, MERGE)
                    found.append(src)
    return found


def _step_forward(source: Source, graph: Lineage, frontier: list[str], expand: bool) -> list[str]:
    unknown = [c for c in frontier if c not in graph.nodes]
    if unknown:
        for batch in source.query_in("lineage/containers", "cids", unknown):
            for _ in _record_nodes(graph, batch.rows):
                pass
        for cid in unknown:
            graph.nodes.setdefault(cid, UNKNOWN_NODE)
    found: list[str] = []
    if not expand:
        return found
    for batch in source.query_in("lineage/split_children", "cids", frontier):
        for child, parent in _record_nodes(graph, batch.rows):
            if child != parent:
                graph.link(parent, child, SPLIT)
                found.append(child)
    for batch in source.query_in("lineage/merge_targets", "cids", frontier):
        for src, target, serial in batch.rows:
            if serial:
                graph.serials.setdefault(src, set()).add(serial)
            if src != target:
                graph.link(src, target, MERGE)
                found.append(target)
    return found


def _serials_of_unexpanded(source: Source, graph: Lineage, frontier: list[str]) -> None:
    """Serials of lots at the depth limit (their merge targets were not looked up)."""
    for batch in source.query_in("lineage/merge_targets", "cids", frontier):
        for src, _target, serial in batch.rows:
            if serial:
                graph.serials.setdefault(src, set()).add(serial)


def _serials_of_finished_lots(source: Source, graph: Lineage) -> None:
    """A combined lot's serial is recorded on its source rows: look the leaves up by LOTID."""
    split_parents = {p for p, cs in graph.links.items() if any(k == SPLIT for k in cs.values())}
    leaves = [c for c in sorted(graph.nodes) if c not in split_parents]
    if not leaves:
        return
    for batch in source.query_in("lineage/merge_sources", "cids", leaves):
        for _src, target, serial in batch.rows:
            if serial:
                graph.serials.setdefault(target, set()).add(serial)

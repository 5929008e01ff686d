"""Stage 2, lineage: the split/merge genealogy around the seeds, backward or forward.

Breadth-first by frontier: each level is one batched lookup per relation (IN lists of <= 1000
ids), so a level of 100K lots costs ~100 queries per relation, not 100K. Both relations are
followed to the depth limit (the old system expanded merges one level only):

- split: ``DW_MES_CONTAINER.SPLITFROMID`` (child -> parent);
- merge: ``DW_MES_PJ_COMBINEDASSYLOTS`` (``CONTAINERID`` source lot -> ``LOTID`` combined lot).

A visited set makes cycles harmless (the edge that closes a cycle is kept, its target is not
expanded again). The graph lives in a ``Scratch`` database (nodes, links, the visited set, each
seed's reach), not in Python objects, so the process holds one frontier page at a time and its
memory does not grow with the trace. Each level's frontier is read in id order, so the queries
(and their recorded checkpoints) do not depend on the order the warehouse returns rows in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import chain, groupby
from typing import Any

from pipeline import domains
from pipeline.config import DEFAULT_LINEAGE_MAX_DEPTH, DEFAULT_SCRATCH_CACHE_MB
from pipeline.errors import InvalidInput
from pipeline.sources.base import Source
from pipeline.stages.scratch import Scratch

SPLIT = "split"
MERGE = "merge"
EDGE_SPLIT_FROM = "split_from"
EDGE_MERGE_SOURCE = "merge_source"
EDGE_GD_REWORK = "gd_rework_source"

SCHEMA = """
CREATE TABLE seeds (pos INTEGER PRIMARY KEY, cid TEXT NOT NULL UNIQUE);
-- every id ever put in a frontier, with its level (the visited set); a level's finds are
-- gathered in ``found`` and added in one sorted insert when the level is done
CREATE TABLE seen (cid TEXT PRIMARY KEY, depth INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX seen_level ON seen (depth, cid);
CREATE TABLE found (cid TEXT NOT NULL);
CREATE TABLE nodes (
    cid TEXT PRIMARY KEY, name TEXT, mfgorder TEXT, wafer TEXT, objecttype TEXT,
    node_type TEXT NOT NULL DEFAULT 'UNKNOWN'
) WITHOUT ROWID;
-- src -> dst: parent when backward, child when forward; the first relation seen wins
CREATE TABLE links (
    src TEXT NOT NULL, dst TEXT NOT NULL, kind TEXT NOT NULL, PRIMARY KEY (src, dst)
) WITHOUT ROWID;
CREATE INDEX links_kind ON links (kind, src, dst);
CREATE INDEX links_dst ON links (dst, kind);
CREATE TABLE serials (cid TEXT NOT NULL, serial TEXT NOT NULL, PRIMARY KEY (cid, serial))
    WITHOUT ROWID;
-- each seed's related lots (and itself at 0) with their shortest distance; filled on demand
CREATE TABLE reach (pos INTEGER NOT NULL, cid TEXT NOT NULL, dist INTEGER NOT NULL,
    PRIMARY KEY (pos, cid)) WITHOUT ROWID;
"""

#: A node's type from its row: ``GD`` > ``GC`` > ``GA`` (work order or name prefix, any case)
#: > ``LOT`` > ``UNKNOWN``; ?2 is the name, ?3 the work order, ?5 the object type.
_NODE_TYPE = """CASE
    WHEN ?3 LIKE 'GD%' OR ?2 LIKE 'GD%' THEN 'GD'
    WHEN ?3 LIKE 'GC%' OR ?2 LIKE 'GC%' THEN 'GC'
    WHEN ?3 LIKE 'GA%' OR ?2 LIKE 'GA%' THEN 'GA'
    WHEN ?5 = 'LOT' THEN 'LOT'
    ELSE 'UNKNOWN' END"""

#: Keys the contract lets a backward lineage document leave out when they are empty.
OPTIONAL_KEYS = frozenset(("seed_roots", "names", "parent_map", "merge_edges", "nodes", "edges"))


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


class Lineage:
    """The graph found around the seeds, held in a scratch database (close it when done, or
    use it as a context manager). Links go from a node to the next one away from the seeds
    (its parents when backward, its children when forward), labelled ``split`` or ``merge``."""

    def __init__(
        self,
        direction: str,
        seeds: Iterable[object],
        max_depth: int,
        *,
        cache_mb: int = DEFAULT_SCRATCH_CACHE_MB,
    ) -> None:
        self.direction = direction
        self.max_depth = max_depth
        self.db = Scratch(SCHEMA, cache_mb=cache_mb)
        self.db.executemany(
            "INSERT OR IGNORE INTO seeds (cid) VALUES (?)",
            ((text,) for value in seeds if value is not None if (text := str(value).strip())),
        )
        self._reach_done = False

    def __enter__(self) -> Lineage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    @property
    def backward(self) -> bool:
        return self.direction == domains.BACKWARD

    # ---- building ------------------------------------------------------------------------
    def record_nodes(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Store node rows ``(CID, SPLITFROMID, NAME, ORDER, WAFER, TYPE)`` (the last row of a
        node wins)."""
        self.db.executemany(
            f"INSERT OR REPLACE INTO nodes VALUES (?1, ?2, ?3, ?4, ?5, {_NODE_TYPE})",
            ((cid, name, order, wafer, kind) for cid, _p, name, order, wafer, kind in rows),
        )

    def record_unknown(self, cids: Iterable[str]) -> None:
        """Ids the warehouse has no row for become nodes without attributes."""
        self.db.executemany(
            "INSERT OR IGNORE INTO nodes (cid) VALUES (?)", ((cid,) for cid in cids)
        )

    def link(self, links: Iterable[tuple[str, str, str]]) -> None:
        """Record ``(start, end, relation)`` links (first relation seen wins: split before
        merge); a link to itself is dropped."""
        self.db.executemany(
            "INSERT OR IGNORE INTO links VALUES (?, ?, ?)",
            ((s, e, kind) for s, e, kind in links if s != e),
        )

    def add_serials(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Finished serials ``(lot, serial)`` (forward)."""
        self.db.executemany("INSERT OR IGNORE INTO serials VALUES (?, ?)", pairs)

    def enqueue(self, cids: Iterable[str]) -> None:
        """Gather ids found at this level (``next_level`` adds the new ones)."""
        self.db.executemany("INSERT INTO found VALUES (?)", ((cid,) for cid in cids))

    def next_level(self, depth: int) -> None:
        """Put the ids gathered by ``enqueue`` that were never seen into the frontier of
        ``depth``: one sorted insert, so the visited set is written in key order."""
        self.db.execute(
            "INSERT OR IGNORE INTO seen SELECT cid, ? FROM found ORDER BY cid", (depth,)
        )
        self.db.execute("DELETE FROM found")

    def frontier(self, depth: int, size: int) -> Iterator[list[tuple[str, bool]]]:
        """The ids of level ``depth`` in id order, ``size`` at a time, each with whether it is a
        node already."""
        pages = self.db.pages(
            "SELECT s.cid, EXISTS (SELECT 1 FROM nodes n WHERE n.cid = s.cid) FROM seen s "
            "WHERE s.depth = :depth AND s.cid > :after ORDER BY s.cid LIMIT :size",
            {"depth": depth},
            size,
            start="",
        )
        for page in pages:
            yield [(cid, bool(known)) for cid, known in page]

    # ---- reading -------------------------------------------------------------------------
    def seed_count(self) -> int:
        return int(self.db.value("SELECT COUNT(*) FROM seeds"))

    def node_count(self) -> int:
        return int(self.db.value("SELECT COUNT(*) FROM nodes"))

    def seed_ids(self) -> Iterator[str]:
        """The seeds, in the order given."""
        return (cid for (cid,) in self.db.rows("SELECT cid FROM seeds ORDER BY pos"))

    def cid_count(self) -> int:
        """How many ids ``all_cids`` yields."""
        return self.seed_count() + int(
            self.db.value("SELECT COUNT(*) FROM nodes WHERE cid NOT IN (SELECT cid FROM seeds)")
        )

    def all_cids(self) -> Iterator[str]:
        """Seeds first, then every other node of the graph in id order (the events' input)."""
        others = self.db.rows(
            "SELECT cid FROM nodes WHERE cid NOT IN (SELECT cid FROM seeds) ORDER BY cid"
        )
        return chain(self.seed_ids(), (cid for (cid,) in others))

    def reach(self, seed: str) -> dict[str, int]:
        """Nodes reachable from ``seed`` within the depth limit, with their distance (seed: 0)."""
        self._fill_reach()
        rows = self.db.execute(
            "SELECT r.cid, r.dist FROM reach r JOIN seeds s ON s.pos = r.pos WHERE s.cid = ?",
            (seed,),
        )
        return dict(rows) or {seed: 0}

    def related(self, seed: str) -> list[str]:
        """Sorted ancestors (backward) or descendants (forward) of ``seed``, itself excluded."""
        return sorted(c for c in self.reach(seed) if c != seed)

    def _fill_reach(self) -> None:
        """Every seed's reach, breadth-first for all seeds at once: one insert per level, the
        first (shortest) distance of a node kept, nodes at the depth limit not expanded."""
        if self._reach_done:
            return
        db = self.db
        db.execute("INSERT INTO reach SELECT pos, cid, 0 FROM seeds")
        for dist in range(1, self.max_depth + 1):
            added = db.execute(
                "INSERT OR IGNORE INTO reach SELECT r.pos, l.dst, ? FROM reach r "
                "JOIN links l ON l.src = r.cid WHERE r.dist = ? ORDER BY r.pos, l.dst",
                (dist, dist - 1),
            ).rowcount
            if not added:
                break
        self._reach_done = True

    def _related_per_seed(self) -> Iterator[tuple[str, list[str]]]:
        self._fill_reach()
        rows = self.db.rows(
            "SELECT s.pos, s.cid, r.cid FROM seeds s "
            "LEFT JOIN reach r ON r.pos = s.pos AND r.dist > 0 ORDER BY s.pos, r.cid"
        )
        for (_pos, seed), group in groupby(rows, key=lambda r: (r[0], r[1])):
            yield seed, [cid for _p, _s, cid in group if cid is not None]

    def _seed_roots(self) -> Iterator[tuple[str, str]]:
        """Per seed, the name of the farthest related lot without links of its own (the wafer
        lot's root; ties: smallest id), or of the seed itself when there is none."""
        self._fill_reach()
        rows = self.db.rows(
            """
            SELECT t.seed, COALESCE(NULLIF(n.name, ''), t.root)
            FROM (
                SELECT s.pos, s.cid AS seed, COALESCE((
                    SELECT r.cid FROM reach r
                    WHERE r.pos = s.pos AND NOT EXISTS (SELECT 1 FROM links l WHERE l.src = r.cid)
                    ORDER BY r.dist DESC, r.cid LIMIT 1
                ), s.cid) AS root
                FROM seeds s
            ) t LEFT JOIN nodes n ON n.cid = t.root
            ORDER BY t.pos
            """
        )
        return ((seed, root) for seed, root in rows)

    def _distinct_related(self) -> int:
        self._fill_reach()
        return int(
            self.db.value(
                "SELECT COUNT(DISTINCT cid) FROM reach "
                "WHERE dist > 0 AND cid NOT IN (SELECT cid FROM seeds)"
            )
        )

    def _grouped_links(self, kind: str | None) -> Iterator[tuple[str, list[str]]]:
        """``(src, sorted dsts)`` per link source in id order (one relation, or all)."""
        if kind is None:
            rows = self.db.rows("SELECT src, dst FROM links ORDER BY src, dst")
        else:
            rows = self.db.rows(
                "SELECT src, dst FROM links WHERE kind = ? ORDER BY src, dst", (kind,)
            )
        for src, group in groupby(rows, key=lambda r: r[0]):
            yield src, [dst for _s, dst in group]

    def _nodes(self) -> Iterator[tuple[str, dict[str, Any]]]:
        rows = self.db.rows("SELECT cid, name, mfgorder, wafer, node_type FROM nodes ORDER BY cid")
        for cid, name, order, wafer, node_type in rows:
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

    def _edges(self) -> Iterator[dict[str, str]]:
        """Every link as a contract edge (parent -> child whatever the direction), sorted. A
        split into a GD (rework) lot from a lot that is not one is a GD rework source."""
        parent, child = ("dst", "src") if self.backward else ("src", "dst")
        rows = self.db.rows(
            f"""
            SELECT l.{parent}, l.{child}, CASE
                WHEN l.kind = '{MERGE}' THEN '{EDGE_MERGE_SOURCE}'
                WHEN c.node_type = 'GD' AND COALESCE(p.node_type, '') <> 'GD'
                    THEN '{EDGE_GD_REWORK}'
                ELSE '{EDGE_SPLIT_FROM}' END
            FROM links l
            LEFT JOIN nodes p ON p.cid = l.{parent}
            LEFT JOIN nodes c ON c.cid = l.{child}
            ORDER BY l.{parent}, l.{child}, l.kind
            """
        )
        for p, c, edge in rows:
            yield {"from_cid": p, "to_cid": c, "edge_type": edge}

    def _common(self) -> Iterator[tuple[str, Any]]:
        names = self.db.rows(
            "SELECT cid, name FROM nodes WHERE name IS NOT NULL AND name <> '' ORDER BY cid"
        )
        yield "names", MapPart((cid, name) for cid, name in names)
        yield "nodes", MapPart(self._nodes())
        yield "edges", ListPart(self._edges())

    def _backward_parts(self) -> Iterator[tuple[str, Any]]:
        yield "stage", "lineage"
        yield "ancestors", MapPart(self._related_per_seed())
        yield "merges", {}
        yield "total_nodes", self.node_count()
        yield "total_ancestor_count", self._distinct_related()
        yield "roots", ListPart(self.seed_ids())
        yield "seed_roots", MapPart(self._seed_roots())
        yield "parent_map", MapPart(self._grouped_links(None))
        yield "merge_edges", MapPart(self._grouped_links(MERGE))
        yield from self._common()

    def _forward_parts(self) -> Iterator[tuple[str, Any]]:
        roots = self.db.rows(
            "SELECT cid FROM nodes WHERE cid NOT IN "
            "(SELECT dst FROM links WHERE kind = 'split') ORDER BY cid"
        )
        leaf_serials = self.db.rows(
            "SELECT s.cid, s.serial FROM serials s JOIN nodes n ON n.cid = s.cid "
            "WHERE s.cid NOT IN (SELECT src FROM links WHERE kind = 'split') "
            "ORDER BY s.cid, s.serial"
        )
        yield "stage", "lineage"
        yield "roots", ListPart(cid for (cid,) in roots)
        yield "children_map", MapPart(self._grouped_links(SPLIT))
        yield (
            "leaf_serials",
            MapPart((cid, [s for _c, s in group]) for cid, group in groupby(leaf_serials, _first)),
        )
        yield "total_nodes", self.node_count()
        yield "descendants", MapPart(self._related_per_seed())
        yield from self._common()

    def payload_parts(self) -> Iterator[tuple[str, Any]]:
        """The contract's lineage data one top-level key at a time: scalars, or ``MapPart`` /
        ``ListPart`` streams read from the scratch database while they are consumed, so a
        caller that stores each part as it comes never holds the document, or even one part.
        Consume each part before asking for the next. Optional keys (backward) are left out
        when empty. Forward adds ``descendants`` per seed (an extension: merges included,
        which ``children_map`` leaves out by contract)."""
        parts = self._backward_parts() if self.backward else self._forward_parts()
        optional = OPTIONAL_KEYS if self.backward else frozenset()
        for key, value in parts:
            if key in optional and isinstance(value, (MapPart, ListPart)):
                value = _unless_empty(value)
            if value or key not in optional:
                yield key, value

    def payload(self) -> dict[str, Any]:
        """The whole lineage document as one dict (for small traces and tests)."""
        document: dict[str, Any] = {}
        for key, value in self.payload_parts():
            if isinstance(value, MapPart):
                value = dict(value)
            elif isinstance(value, ListPart):
                value = list(value)
            document[key] = value
        return document


def _first(row: tuple[Any, ...]) -> Any:
    return row[0]


def _unless_empty(part: MapPart | ListPart) -> MapPart | ListPart | None:
    """The part, or ``None`` when it has no item (peeks at its first one)."""
    items = iter(part)
    for first in items:
        rest: Iterator[Any] = chain([first], items)
        return MapPart(rest) if isinstance(part, MapPart) else ListPart(rest)
    return None


def trace_lineage(
    source: Source,
    seeds: Iterable[object],
    direction: str,
    *,
    max_depth: int = DEFAULT_LINEAGE_MAX_DEPTH,
    cache_mb: int = DEFAULT_SCRATCH_CACHE_MB,
) -> Lineage:
    """Walk the genealogy of ``seeds`` ``direction`` (``backward``/``forward``) to ``max_depth``;
    the caller closes the returned ``Lineage``. ``seeds`` may be any iterable (read once).

    Raises ``InvalidInput`` for no seeds or a bad direction; source errors pass through.
    """
    if direction not in domains.DIRECTIONS:
        raise InvalidInput(
            f"direction must be backward or forward, got {direction!r}", field="direction"
        )
    if max_depth < 0:
        raise InvalidInput("max_depth must not be negative", field="max_depth")
    graph = Lineage(direction, seeds, max_depth, cache_mb=cache_mb)
    try:
        if not graph.seed_count():
            raise InvalidInput("container_ids is empty", field="container_ids")
        walk(source, graph)
    except BaseException:
        graph.close()
        raise
    return graph


def walk(source: Source, graph: Lineage) -> None:
    """Fill ``graph`` by walking out from its seeds, level by level (``trace_lineage``)."""
    graph.db.execute("INSERT INTO seen SELECT cid, 0 FROM seeds ORDER BY cid")
    step = _step_backward if graph.backward else _step_forward
    size = source.in_list_size
    depth = 0
    while True:
        expand = depth < graph.max_depth
        pages = 0
        for page in graph.frontier(depth, size):
            pages += 1
            found = step(source, graph, page, expand)
            if expand:
                graph.enqueue(found)
            elif not graph.backward:
                _serials_of_unexpanded(source, graph, [cid for cid, _known in page])
        if not pages or not expand:
            break
        depth += 1
        graph.next_level(depth)
    if not graph.backward:
        _serials_of_finished_lots(source, graph, size)


def _step_backward(
    source: Source, graph: Lineage, page: list[tuple[str, bool]], expand: bool
) -> list[str]:
    cids = [cid for cid, _known in page]
    found: list[str] = []
    links: list[tuple[str, str, str]] = []
    for batch in source.query_in("lineage/containers", "cids", cids):
        graph.record_nodes(batch.rows)
        if expand:
            for cid, parent, *_ in batch.rows:
                if parent and parent != cid:
                    links.append((cid, parent, SPLIT))
                    found.append(parent)
    graph.record_unknown(cids)
    graph.link(links)
    if expand:
        links = []
        for batch in source.query_in("lineage/merge_sources", "cids", cids):
            for src, target, _serial in batch.rows:
                if src != target:
                    links.append((target, src, MERGE))
                    found.append(src)
        graph.link(links)
    return found


def _step_forward(
    source: Source, graph: Lineage, page: list[tuple[str, bool]], expand: bool
) -> list[str]:
    cids = [cid for cid, _known in page]
    unknown = [cid for cid, known in page if not known]
    if unknown:
        for batch in source.query_in("lineage/containers", "cids", unknown):
            graph.record_nodes(batch.rows)
        graph.record_unknown(unknown)
    found: list[str] = []
    if not expand:
        return found
    links: list[tuple[str, str, str]] = []
    for batch in source.query_in("lineage/split_children", "cids", cids):
        graph.record_nodes(batch.rows)
        for child, parent, *_ in batch.rows:
            if child != parent:
                links.append((parent, child, SPLIT))
                found.append(child)
    graph.link(links)
    links = []
    for batch in source.query_in("lineage/merge_targets", "cids", cids):
        graph.add_serials((src, serial) for src, _target, serial in batch.rows if serial)
        for src, target, _serial in batch.rows:
            if src != target:
                links.append((src, target, MERGE))
                found.append(target)
    graph.link(links)
    return found


def _serials_of_unexpanded(source: Source, graph: Lineage, cids: list[str]) -> None:
    """Serials of lots at the depth limit (their merge targets were not looked up)."""
    for batch in source.query_in("lineage/merge_targets", "cids", cids):
        graph.add_serials((src, serial) for src, _target, serial in batch.rows if serial)


def _serials_of_finished_lots(source: Source, graph: Lineage, size: int) -> None:
    """A combined lot's serial is recorded on its source rows: look the leaves (nodes without
    split children) up by LOTID, a page of ids at a time."""
    pages = graph.db.pages(
        "SELECT cid FROM nodes WHERE cid > :after AND cid NOT IN "
        "(SELECT src FROM links WHERE kind = 'split') ORDER BY cid LIMIT :size",
        {},
        size,
        start="",
    )
    for page in pages:
        leaves = [cid for (cid,) in page]
        for batch in source.query_in("lineage/merge_sources", "cids", leaves):
            graph.add_serials((target, serial) for _src, target, serial in batch.rows if serial)

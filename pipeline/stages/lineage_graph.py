"""The lineage graph: the split/merge genealogy found around the seeds, held in a scratch
database while it is walked (``pipeline.stages.lineage``) and read back (the lineage document,
``pipeline.stages.lineage_document``; the lot list of the events stage).

A graph drawn as the query tool's tree (``semantic``) also holds the contract's semantic links,
added after the walk: each lot's wafer lot container -> the lot (``wafer_origin``), and the lot a
GD lot reworks -> the GD lot (``gd_rework_source``). They count as relations like splits and
merges (ancestors, descendants, roots); the analysis's graphs have none.

Nodes, links, the visited set and each seed's reach live in a ``Scratch`` database, not in
Python objects, so a process holds one frontier page or one read batch at a time and its memory
does not grow with the trace. Every reader yields rows in a fixed order (ids, seed order), so
what is stored from them does not depend on the order the warehouse returned rows in.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator
from itertools import chain, groupby
from operator import itemgetter
from typing import Any

from pipeline import domains
from pipeline.config import DEFAULT_SCRATCH_CACHE_MB
from pipeline.stages.scratch import Scratch

#: The relations a link is labelled with: a split (child -> parent) or a merge (source lot ->
#: combined lot), as the walk found it.
SPLIT = "split"
MERGE = "merge"
#: The contract's edge types (``edges``).
EDGE_SPLIT_FROM = "split_from"
EDGE_MERGE_SOURCE = "merge_source"
EDGE_WAFER_ORIGIN = "wafer_origin"
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
    node_type TEXT NOT NULL DEFAULT 'UNKNOWN',
    origin TEXT  -- a GD lot's rework source: ORIGINALCONTAINERID, else SPLITFROMID
) WITHOUT ROWID;
-- src -> dst: parent when backward, child when forward; the first relation seen wins
CREATE TABLE links (
    src TEXT NOT NULL, dst TEXT NOT NULL, kind TEXT NOT NULL, PRIMARY KEY (src, dst)
) WITHOUT ROWID;
CREATE INDEX links_kind ON links (kind, src, dst);
CREATE INDEX links_dst ON links (dst, kind);
-- the semantic links of a tree (parent -> child, contract edge type), and the containers found
-- by wafer lot name (rows as nodes'; the smallest id of a name is that wafer lot's container)
CREATE TABLE semantic (
    parent TEXT NOT NULL, child TEXT NOT NULL, kind TEXT NOT NULL,
    PRIMARY KEY (parent, child, kind)
) WITHOUT ROWID;
CREATE INDEX semantic_child ON semantic (child, parent);
CREATE TABLE wafers (
    name TEXT NOT NULL, cid TEXT NOT NULL, parent TEXT, mfgorder TEXT, wafer TEXT,
    objecttype TEXT, original TEXT, PRIMARY KEY (name, cid)
) WITHOUT ROWID;
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
#: A GD lot's rework source (HEAD's rule): ?6 ORIGINALCONTAINERID, else ?7 SPLITFROMID.
_ORIGIN = """CASE WHEN ?3 LIKE 'GD%' OR ?2 LIKE 'GD%'
    THEN COALESCE(NULLIF(?6, ''), NULLIF(?7, '')) END"""


class Lineage:
    """The graph found around the seeds, held in a scratch database (close it when done, or
    use it as a context manager). Links go from a node to the next one away from the seeds
    (its parents when backward, its children when forward), labelled ``split`` or ``merge``;
    ``semantic``: the walk also adds the wafer and rework links of the query tool's trees."""

    def __init__(
        self,
        direction: str,
        seeds: Iterable[object],
        max_depth: int,
        *,
        cache_mb: int = DEFAULT_SCRATCH_CACHE_MB,
        semantic: bool = False,
    ) -> None:
        self.direction = direction
        self.max_depth = max_depth
        self.semantic = semantic
        self.db = Scratch(SCHEMA, cache_mb=cache_mb)
        # Every relation oriented like ``links`` (away from the seeds): what reach walks.
        near, far = ("child", "parent") if self.backward else ("parent", "child")
        self.db.execute(
            "CREATE VIEW hops AS SELECT src, dst FROM links "
            f"UNION ALL SELECT {near}, {far} FROM semantic"
        )
        self._hops = "hops" if semantic else "links"
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
    def record_nodes(self, rows: Iterable[tuple[Any, ...]], *, replace: bool = True) -> None:
        """Store node rows ``(CID, SPLITFROMID, NAME, ORDER, WAFER, TYPE, ORIGINAL)`` (the last
        row of a node wins; the first when not ``replace``)."""
        verb = "REPLACE" if replace else "IGNORE"
        self.db.executemany(
            f"INSERT OR {verb} INTO nodes VALUES (?1, ?2, ?3, ?4, ?5, {_NODE_TYPE}, {_ORIGIN})",
            (
                (cid, name, order, wafer, kind, original, parent)
                for cid, parent, name, order, wafer, kind, original in rows
            ),
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

    def begin_walk(self) -> None:
        """Make the seeds the frontier of level 0 (a walk starts here)."""
        self.db.execute("INSERT INTO seen SELECT cid, 0 FROM seeds ORDER BY cid")

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

    def leaves(self, size: int) -> Iterator[list[str]]:
        """The nodes without split children (finished lots, forward) in id order, ``size`` at
        a time (each page read whole: the caller may add serials in between)."""
        pages = self.db.pages(
            "SELECT cid FROM nodes WHERE cid > :after AND cid NOT IN "
            "(SELECT src FROM links WHERE kind = 'split') ORDER BY cid LIMIT :size",
            {},
            size,
            start="",
        )
        for page in pages:
            yield [cid for (cid,) in page]

    # ---- the semantic links (a tree's, after the walk) -------------------------------------
    def missing_rework_sources(self, size: int) -> Iterator[list[str]]:
        """The rework sources of GD nodes that are not nodes, in id order, ``size`` at a time."""
        pages = self.db.pages(
            "SELECT origin FROM nodes WHERE origin > :after AND origin NOT IN "
            "(SELECT cid FROM nodes) GROUP BY origin ORDER BY origin LIMIT :size",
            {},
            size,
            start="",
        )
        for page in pages:
            yield [cid for (cid,) in page]

    def wafer_lots(self, size: int) -> Iterator[list[str]]:
        """The nodes' distinct wafer lot ids, in order, ``size`` at a time."""
        pages = self.db.pages(
            "SELECT wafer FROM nodes WHERE wafer > :after GROUP BY wafer "
            "ORDER BY wafer LIMIT :size",
            {},
            size,
            start="",
        )
        for page in pages:
            yield [name for (name,) in page]

    def record_wafers(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Keep the containers found by wafer lot name (rows as ``record_nodes``)."""
        self.db.executemany(
            "INSERT OR IGNORE INTO wafers VALUES (?3, ?1, ?2, ?4, ?5, ?6, ?7)", rows
        )

    def link_semantics(self) -> None:
        """Make each wafer lot's container (the smallest id of its name) a WAFER node linked to
        every node of that wafer lot but itself, and link each GD node's rework source to it."""
        db = self.db
        db.execute(
            "DELETE FROM wafers WHERE cid > (SELECT MIN(w.cid) FROM wafers w WHERE w.name = "
            "wafers.name)"
        )
        self.record_nodes(
            db.rows(
                "SELECT cid, parent, name, mfgorder, wafer, objecttype, original FROM wafers "
                "ORDER BY cid"
            ),
            replace=False,
        )
        db.execute(
            "INSERT OR IGNORE INTO semantic SELECT w.cid, n.cid, ? FROM nodes n "
            "JOIN wafers w ON w.name = n.wafer WHERE w.cid <> n.cid ORDER BY w.cid, n.cid",
            (EDGE_WAFER_ORIGIN,),
        )
        db.execute(
            "INSERT OR IGNORE INTO semantic SELECT origin, cid, ? FROM nodes "
            "WHERE origin IS NOT NULL AND origin <> cid ORDER BY origin, cid",
            (EDGE_GD_REWORK,),
        )
        db.execute(
            "UPDATE nodes SET node_type = 'WAFER' WHERE cid IN "
            "(SELECT parent FROM semantic WHERE kind = ?)",
            (EDGE_WAFER_ORIGIN,),
        )

    # ---- reading -------------------------------------------------------------------------
    def seed_count(self) -> int:
        return int(self.db.value("SELECT COUNT(*) FROM seeds"))

    def node_count(self) -> int:
        return int(self.db.value("SELECT COUNT(*) FROM nodes"))

    def seed_ids(self) -> Generator[str, None, None]:
        """The seeds, in the order given (close it to drop its cursor early)."""
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
                f"JOIN {self._hops} l ON l.src = r.cid WHERE r.dist = ? ORDER BY r.pos, l.dst",
                (dist, dist - 1),
            ).rowcount
            if not added:
                break
        self._reach_done = True

    def related_per_seed(self) -> Iterator[tuple[str, list[str]]]:
        """``(seed, sorted related lots)`` per seed, in the order given (``related``, all at
        once)."""
        self._fill_reach()
        rows = self.db.rows(
            "SELECT s.pos, s.cid, r.cid FROM seeds s "
            "LEFT JOIN reach r ON r.pos = s.pos AND r.dist > 0 ORDER BY s.pos, r.cid"
        )
        for (_pos, seed), group in groupby(rows, key=lambda r: (r[0], r[1])):
            yield seed, [cid for _p, _s, cid in group if cid is not None]

    def seed_roots(self) -> Iterator[tuple[str, str]]:
        """Per seed, the name of the farthest related lot without links of its own (the wafer
        lot's root, or in a tree its wafer; ties: smallest id), or of the seed itself when there
        is none."""
        self._fill_reach()
        rows = self.db.rows(
            f"""
            SELECT t.seed, COALESCE(NULLIF(n.name, ''), t.root)
            FROM (
                SELECT s.pos, s.cid AS seed, COALESCE((
                    SELECT r.cid FROM reach r
                    WHERE r.pos = s.pos
                        AND NOT EXISTS (SELECT 1 FROM {self._hops} l WHERE l.src = r.cid)
                    ORDER BY r.dist DESC, r.cid LIMIT 1
                ), s.cid) AS root
                FROM seeds s
            ) t LEFT JOIN nodes n ON n.cid = t.root
            ORDER BY t.pos
            """
        )
        return ((seed, root) for seed, root in rows)

    def distinct_related(self) -> int:
        """How many lots are related to any seed without being a seed themselves."""
        self._fill_reach()
        return int(
            self.db.value(
                "SELECT COUNT(DISTINCT cid) FROM reach "
                "WHERE dist > 0 AND cid NOT IN (SELECT cid FROM seeds)"
            )
        )

    def grouped_links(self, kind: str | None) -> Iterator[tuple[str, list[str]]]:
        """``(src, sorted dsts)`` per link source in id order: one relation, or every relation
        the graph has (the semantic links of a tree too: backward, ``parent_map``)."""
        if kind is not None:
            rows = self.db.rows(
                "SELECT src, dst FROM links WHERE kind = ? ORDER BY src, dst", (kind,)
            )
        elif self.semantic:
            rows = self.db.rows("SELECT DISTINCT src, dst FROM hops ORDER BY src, dst")
        else:
            rows = self.db.rows("SELECT src, dst FROM links ORDER BY src, dst")
        return _grouped(rows)

    def children_map(self) -> Iterator[tuple[str, list[str]]]:
        """Forward: ``(parent, sorted children)`` of the splits and the semantic links (never
        the merges), per parent in id order."""
        return _grouped(
            self.db.rows(
                "SELECT src, dst FROM links WHERE kind = 'split' "
                "UNION SELECT parent, child FROM semantic ORDER BY 1, 2"
            )
        )

    def names(self) -> Iterator[tuple[str, str]]:
        """``(cid, name)`` of every node with a name, in id order."""
        rows = self.db.rows(
            "SELECT cid, name FROM nodes WHERE name IS NOT NULL AND name <> '' ORDER BY cid"
        )
        return ((cid, name) for cid, name in rows)

    def nodes(self) -> Iterator[tuple[str, str | None, str | None, str | None, str]]:
        """``(cid, name, work order, wafer lot, node type)`` of every node, in id order."""
        return self.db.rows("SELECT cid, name, mfgorder, wafer, node_type FROM nodes ORDER BY cid")

    def edges(self) -> Iterator[tuple[str, str, str]]:
        """Every link as ``(parent, child, edge type)`` whatever the direction, sorted: splits,
        merges and the semantic links (a GD lot split off the lot it reworks has both a
        ``split_from`` and a ``gd_rework_source`` edge from it)."""
        parent, child = ("dst", "src") if self.backward else ("src", "dst")
        rows = self.db.rows(
            f"""
            SELECT {parent}, {child}, CASE kind WHEN '{MERGE}' THEN '{EDGE_MERGE_SOURCE}'
                ELSE '{EDGE_SPLIT_FROM}' END FROM links
            UNION ALL SELECT parent, child, kind FROM semantic
            ORDER BY 1, 2, 3
            """
        )
        return ((p, c, edge) for p, c, edge in rows)

    def tops(self) -> Iterator[str]:
        """Forward's roots, the tops of the tree: the nodes no ``children_map`` link points to
        (no split, no semantic link; a merge does not count), in id order."""
        rows = self.db.rows(
            "SELECT cid FROM nodes WHERE cid NOT IN (SELECT dst FROM links WHERE kind = 'split') "
            "AND cid NOT IN (SELECT child FROM semantic) ORDER BY cid"
        )
        return (cid for (cid,) in rows)

    def leaf_serials(self) -> Iterator[tuple[str, list[str]]]:
        """``(lot, sorted serials)`` of the nodes without split children that have serials
        (forward), in id order."""
        rows = self.db.rows(
            "SELECT s.cid, s.serial FROM serials s JOIN nodes n ON n.cid = s.cid "
            "WHERE s.cid NOT IN (SELECT src FROM links WHERE kind = 'split') "
            "ORDER BY s.cid, s.serial"
        )
        for cid, group in groupby(rows, key=itemgetter(0)):
            yield cid, [serial for _cid, serial in group]


def _grouped(rows: Iterable[tuple[str, str]]) -> Iterator[tuple[str, list[str]]]:
    """``(key, values)`` of ``(key, value)`` rows sorted by key."""
    for key, group in groupby(rows, key=itemgetter(0)):
        yield key, [value for _key, value in group]

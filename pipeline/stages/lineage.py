"""Stage 2, lineage: the split/merge genealogy around the seeds, backward or forward.

Breadth-first by frontier: each level is one batched lookup per relation (IN lists of <= 1000
ids), so a level of 100K lots costs ~100 queries per relation, not 100K. Both relations are
followed to the depth limit (the old system expanded merges one level only):

- split: ``DW_MES_CONTAINER.SPLITFROMID`` (child -> parent);
- merge: ``DW_MES_PJ_COMBINEDASSYLOTS`` (``CONTAINERID`` source lot -> ``LOTID`` combined lot).

A visited set makes cycles harmless (the edge that closes a cycle is kept, its target is not
expanded again). A graph drawn as the query tool's tree (``semantic``) then gets its wafer and
rework links: the containers named by the nodes' wafer lots (``FIRSTNAME``) and the GD lots'
rework sources not yet in the graph are looked up, a page of ids or names at a time, and added
as nodes (not walked from). What is found goes into a ``Lineage`` graph
(``pipeline.stages.lineage_graph``: a scratch database, not Python objects), so the walk holds
one frontier page at a time and its memory does not grow with the trace. Each level's frontier
is read in id order, so the queries (and their recorded checkpoints) do not depend on the order
the warehouse returns rows in. The document the contract returns is read from the graph
afterwards (``pipeline.stages.lineage_document``).
"""

from __future__ import annotations

from collections.abc import Iterable

from pipeline import domains
from pipeline.config import DEFAULT_LINEAGE_MAX_DEPTH, DEFAULT_SCRATCH_CACHE_MB
from pipeline.errors import InvalidInput
from pipeline.sources.base import Source
from pipeline.stages.lineage_graph import MERGE, SPLIT, Lineage


def trace_lineage(
    source: Source,
    seeds: Iterable[object],
    direction: str,
    *,
    max_depth: int = DEFAULT_LINEAGE_MAX_DEPTH,
    cache_mb: int = DEFAULT_SCRATCH_CACHE_MB,
    semantic: bool = False,
) -> Lineage:
    """Walk the genealogy of ``seeds`` ``direction`` (``backward``/``forward``) to ``max_depth``;
    the caller closes the returned ``Lineage``. ``seeds`` may be any iterable (read once).
    ``semantic``: add the wafer and rework links of the query tool's trees.

    Raises ``InvalidInput`` for no seeds or a bad direction; source errors pass through.
    """
    if direction not in domains.DIRECTIONS:
        raise InvalidInput(
            f"direction must be backward or forward, got {direction!r}", field="direction"
        )
    if max_depth < 0:
        raise InvalidInput("max_depth must not be negative", field="max_depth")
    graph = Lineage(direction, seeds, max_depth, cache_mb=cache_mb, semantic=semantic)
    try:
        if not graph.seed_count():
            raise InvalidInput("container_ids is empty", field="container_ids")
        walk(source, graph)
    except BaseException:
        graph.close()
        raise
    return graph


def walk(source: Source, graph: Lineage) -> None:
    """Fill ``graph`` by walking out from its seeds, level by level, then add its semantic links
    when it has them (``trace_lineage``)."""
    graph.begin_walk()
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
    if graph.semantic:
        _link_semantics(source, graph, size)


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
    for leaves in graph.leaves(size):
        for batch in source.query_in("lineage/merge_sources", "cids", leaves):
            graph.add_serials((target, serial) for _src, target, serial in batch.rows if serial)


def _link_semantics(source: Source, graph: Lineage, size: int) -> None:
    """The rework sources the walk did not reach become nodes (``UNKNOWN`` when the warehouse
    has no row), then the wafer lots' containers are found by name and everything is linked."""
    for cids in graph.missing_rework_sources(size):
        for batch in source.query_in("lineage/containers", "cids", cids):
            graph.record_nodes(batch.rows)
        graph.record_unknown(cids)
    for names in graph.wafer_lots(size):
        for batch in source.query_in("lineage/wafers", "names", names):
            graph.record_wafers(batch.rows)
    graph.link_semantics()

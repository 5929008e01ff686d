"""The option lists of the mid-section-defect page that come from the warehouse: the loss
reasons of the rejects, and the container attribute combinations its Type/Package pickers
narrow each other over (``/api/mid-section-defect/loss-reasons`` and
``/container-filter-options``).

``loss_reasons`` and ``container_combinations`` are plain functions over a ``Source`` (a worker
runs them: ``pipeline.engine.options``); ``narrow`` is the pickers' cross-filter over the
combinations, run by the API over the cached tuples, never against the warehouse.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from pipeline.sources.base import Source

#: The picker dimensions, in the order of a combination's values: PJ_TYPE, PRODUCTLINENAME
#: (package), PJ_BOP, PJ_FUNCTION.
DIMENSIONS = ("pj_types", "packages", "bops", "pj_functions")
#: One distinct combination of a container's attributes, in ``DIMENSIONS`` order ("" for a
#: missing function).
Combination = tuple[str, str, str, str]


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def loss_reasons(source: Source) -> list[str]:
    """The distinct, trimmed, non-blank ``LOSSREASONNAME``s of ``DW_MES_LOTREJECTHISTORY``,
    sorted. Raises the source's errors (``SourceUnavailable``: retry)."""
    reasons: set[str] = set()
    for batch in source.query("msd/loss_reasons"):
        reasons.update(_text(row[0]) for row in batch.rows)
    reasons.discard("")
    return sorted(reasons)


def container_combinations(source: Source) -> list[Combination]:
    """The distinct (PJ_TYPE, PRODUCTLINENAME, PJ_BOP, PJ_FUNCTION) of ``DW_MES_CONTAINER``,
    trimmed and sorted; a combination without a type, package or BOP is left out (the old
    backend's rule), a missing function is "". Raises the source's errors."""
    combinations: set[Combination] = set()
    for batch in source.query("msd/container_options"):
        for row in batch.rows:
            pj_type, package, bop, function = (_text(v) for v in row)
            if pj_type and package and bop:
                combinations.add((pj_type, package, bop, function))
    return sorted(combinations)


def narrow(
    combinations: Iterable[Sequence[str]], selected: Mapping[str, Iterable[str]] | None = None
) -> dict[str, list[str]]:
    """Each dimension's values (sorted, non-blank) among the combinations that match the
    selection of every *other* dimension: a dimension's own selection never narrows its own
    list, so a picker keeps offering its siblings. Selected values no combination has are
    dropped (a stale pick narrows nothing), and so are keys that are not dimensions."""
    tuples = [tuple(c) for c in combinations]
    known = [{t[i] for t in tuples} for i in range(len(DIMENSIONS))]
    wanted = [set((selected or {}).get(dim) or ()) & known[i] for i, dim in enumerate(DIMENSIONS)]
    answer: dict[str, list[str]] = {}
    for i, dim in enumerate(DIMENSIONS):
        values = {
            t[i] for t in tuples if all(not w or t[j] in w for j, w in enumerate(wanted) if j != i)
        }
        values.discard("")
        answer[dim] = sorted(values)
    return answer

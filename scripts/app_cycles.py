#!/usr/bin/env python3
"""Count the import cycles between the apps under apps/ (the evidence for ADR 0001).

    .venv/bin/python scripts/app_cycles.py [--details]

Builds the import graph with grimp (import-linter's engine: every import, at module level or
inside a function, TYPE_CHECKING ones included), folds it to one node per app and prints the
cross-app import count, the two-way pairs and the strongly connected groups (a group of more
than one app is a cycle). Exits 1 when there is any cycle.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import grimp
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

ROOT = Path(__file__).resolve().parent.parent


def app_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "apps" else None


def strongly_connected(nodes: set[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of the app graph (scipy's csgraph), each sorted."""
    names = sorted(nodes)
    index = {name: i for i, name in enumerate(names)}
    pairs = [(index[a], index[b]) for a, targets in edges.items() for b in targets]
    rows, cols = zip(*pairs, strict=True) if pairs else ((), ())
    matrix = csr_matrix(([1] * len(pairs), (rows, cols)), shape=(len(names), len(names)))
    _, labels = connected_components(matrix, directed=True, connection="strong")
    groups: dict[int, list[str]] = defaultdict(list)
    for name, label in zip(names, labels, strict=True):
        groups[int(label)].append(name)
    return [sorted(g) for g in groups.values()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--details", action="store_true", help="list every cross-app import")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph("apps", cache_dir=None)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    lines: list[str] = []
    for importer in sorted(graph.modules):
        if ".migrations." in importer:
            continue
        src = app_of(importer)
        for imported in graph.find_modules_directly_imported_by(importer):
            dst = app_of(imported)
            if src and dst and src != dst:
                counts[(src, dst)] += 1
                if args.details:
                    lines.append(f"  {importer} -> {imported}")
    nodes = {a for pair in counts for a in pair}
    edges: dict[str, set[str]] = defaultdict(set)
    for src, dst in counts:
        edges[src].add(dst)
    two_way = sorted({tuple(sorted(p)) for p in counts if (p[1], p[0]) in counts})
    cycles = [g for g in strongly_connected(nodes, edges) if len(g) > 1]
    print(f"apps: {len(nodes)}; cross-app imports (module pairs): {sum(counts.values())}")
    print(f"two-way pairs: {len(two_way)}" + "".join(f"\n  {a} <-> {b}" for a, b in two_way))
    print(
        f"strongly connected groups of more than one app (cycles): {len(cycles)}"
        + "".join(f"\n  {' '.join(g)} ({len(g)} apps)" for g in cycles)
    )
    if args.details:
        print("cross-app imports:")
        print("\n".join(lines))
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())

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

ROOT = Path(__file__).resolve().parent.parent


def app_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "apps" else None


def strongly_connected(nodes: set[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm; groups in no particular order, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            groups.append(sorted(group))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return groups


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

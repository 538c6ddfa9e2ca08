"""Badge-of-badges dependencies between templates (docs/CONTRACT.md "Rules beyond the reference"): the graph and its cycles.

Shared by the validator (a cycle is a configuration error, named along its path) and by the
compiler (a configuration that still holds one, e.g. written by an older tool, must not make
the engine's award cascade loop: the templates of a cycle are left out of it).
"""

from __future__ import annotations

from typing import Iterable, Mapping


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Every elementary cycle found by a depth-first walk, each as its path ``[a, b, ..., a]``.

    ``graph`` maps a template to the templates its badge requirements name. Each node is
    reported in at most one cycle (enough to name what to fix); the order is deterministic.
    """
    edges = {node: list(dict.fromkeys(targets)) for node, targets in graph.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []
    in_cycle: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        path.append(node)
        for nxt in edges.get(node, ()):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                if not in_cycle.intersection(cycle):
                    cycles.append(cycle)
                    in_cycle.update(cycle)
            elif nxt not in state:
                visit(nxt, path)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    return cycles

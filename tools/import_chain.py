"""The longest import chain inside a package, on grimp's graph (the one import-linter checks).

    .venv/bin/python tools/import_chain.py gateway

A chain is a path of imports that visits no module twice: `a -> b -> c` means a imports b, b imports
c. Its length is the number of modules on it. Imports inside functions count as grimp counts them.
It prints two chains: over every import, and over the imports that run (`if TYPE_CHECKING:` left out).
"""

import sys
from functools import cache

import grimp


def longest_chain(package: str, *, type_checking: bool = True) -> list[str]:
    """One of the longest chains of imports between modules of `package` (exhaustive: packages are small)."""
    graph = grimp.build_graph(package, exclude_type_checking_imports=not type_checking, cache_dir=None)
    modules = sorted(graph.find_children(package) | graph.find_descendants(package))
    imports = {m: sorted(i for i in graph.find_modules_directly_imported_by(m) if i in modules) for m in modules}

    def walk(module: str, seen: frozenset[str]) -> list[str]:
        best: list[str] = []
        for imported in imports[module]:
            if imported not in seen:
                chain = walk(imported, seen | {imported})
                if len(chain) > len(best):
                    best = chain
        return [module, *best]

    @cache
    def acyclic_walk(module: str) -> tuple[str, ...]:  # memoised when no cycle can be reached
        return tuple(walk(module, frozenset({module})))

    return max((list(acyclic_walk(m)) for m in modules), key=len)


if __name__ == "__main__":
    package = sys.argv[1] if len(sys.argv) > 1 else "gateway"
    for label, type_checking in (("every import", True), ("imports that run", False)):
        chain = longest_chain(package, type_checking=type_checking)
        print(f"{label}: {len(chain)} modules: " + " -> ".join(chain))

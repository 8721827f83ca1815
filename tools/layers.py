"""``python -m tools.layers``: the import graph of lib/ and firmware/, layer by layer, checked.

Layers, lowest first (BRIEF §4): ``atmodem`` (AT engine) < ``air724`` (driver) < ``aliyun`` <
the firmware (firmware/, its ``boards`` package included). Every import counts, lazy ones inside
functions too. The check fails (exit status 1) on an arrow that points up a layer, on an import
cycle, on a module over ``MODULE_LINES`` lines and on a function over ``FUNCTION_LINES`` lines.
Imports of modules outside the two trees (asyncio, time, machine...) are not arrows.
"""

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("atmodem", "air724", "aliyun", "firmware")
MODULE_LINES = 300
FUNCTION_LINES = 50


def modules(root: Path) -> dict:
    """{module name: (layer index, file)} of lib/ (by top package) and firmware/ (all one
    layer: its files are the board's top-level modules)."""
    found = {}
    for top in ("lib", "firmware"):
        base = root / top
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            if not parts:
                continue
            if top == "firmware":
                layer = LAYERS.index("firmware")
            elif parts[0] in LAYERS:
                layer = LAYERS.index(parts[0])
            else:
                layer = -1  # a lib/ package no layer names: reported
            found[".".join(parts)] = (layer, path)
    return found


def imports(path: Path, known: dict) -> set:
    """The modules of ``known`` that ``path`` imports (``from p import m`` counts as p.m when
    that is a module)."""
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module + "." + alias.name for alias in node.names]
            names = [n if n in known else node.module for n in names]
        else:
            continue
        for name in names:
            while name and name not in known:  # "a.b.c" of a package "a.b"
                name = name.rpartition(".")[0]
            if name:
                targets.add(name)
    return targets


def cycles(graph: dict) -> list:
    """Strongly connected components with more than one module, or a module importing itself
    (Tarjan's algorithm), each as a sorted list."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def sizes(path: Path, shown: str) -> list:
    """Problems: the module or one of its functions over its line budget."""
    text = path.read_text()
    problems = []
    lines = text.count("\n")
    if lines > MODULE_LINES:
        problems.append("size: %s has %d lines (> %d)" % (shown, lines, MODULE_LINES))
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > FUNCTION_LINES:
                what = "%s:%d %s()" % (shown, node.lineno, node.name)
                problems.append("size: %s has %d lines (> %d)" % (what, n, FUNCTION_LINES))
    return problems


def check(root: Path = ROOT) -> tuple:
    """``(report lines, problems)`` for the tree at ``root``."""
    known = modules(root)
    graph = {name: imports(path, known) - {name} for name, (_, path) in known.items()}
    for name, (_, path) in known.items():  # a module importing itself is a cycle too
        if name in imports(path, known):
            graph[name].add(name)
    report, problems = [], []
    for layer, title in enumerate(LAYERS):
        report.append("%d %s" % (layer, title))
        for name in sorted(n for n in known if known[n][0] == layer):
            arrows = ", ".join(sorted(graph[name])) or "-"
            report.append("    %s -> %s" % (name, arrows))
    for name in sorted(known):
        layer, path = known[name]
        shown = str(path.relative_to(root))
        if layer < 0:
            problems.append("layer: %s is in no layer (%s)" % (name, ", ".join(LAYERS)))
        for target in sorted(graph[name]):
            if known[target][0] > layer:
                up = (name, LAYERS[layer], target, LAYERS[known[target][0]])
                problems.append("upward: %s (%s) imports %s (%s)" % up)
        problems.extend(sizes(path, shown))
    for component in cycles(graph):
        problems.append("cycle: " + " <-> ".join(component))
    return report, problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.layers", description=__doc__)
    parser.add_argument("--root", type=Path, default=ROOT, help="the tree (lib/, firmware/)")
    args = parser.parse_args(argv)
    report, problems = check(args.root)
    for line in report + problems:
        print(line)
    print("layers: %d problem(s)" % len(problems) if problems else "layers: ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""The project's rooms and the imports between them: checks the layering and draws docs/architecture.png.

    python tools/architecture.py --check            # circles, upward or sideways imports, long files, path hacks
    python tools/architecture.py --draw docs/architecture.png

Rooms, lowest first (a module may import from its own room and from rooms below it, never from above or from a
sibling on the same level); the first matching rule places a module. docs/architecture.md explains them.
"""

import argparse
import ast
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Dict, List, Optional, Set, Tuple

# (room, level, module patterns); patterns are dotted module names matched with fnmatch
ROOMS: List[Tuple[str, int, Tuple[str, ...]]] = [
    ("utilities", 0, ("fastformer.cli", "fastformer.fileio", "fastformer.env", "fastformer.import_hooks")),
    ("metrics", 2, ("fastformer.metrics",)),
    ("training", 3, ("fastformer.training", "fastformer.training.*")),
    ("inference", 3, ("fastformer.inference", "fastformer.inference.*")),
    ("public API", 4, ("fastformer",)),
    ("model", 1, ("fastformer.*",)),
    ("data", 5, ("data_process", "data_process.*")),
    ("scripts", 6, ("train", "evaluate", "export_model", "predict", "serve")),
    ("reproduction", 7, ("reproduction", "reproduction.*")),
    ("tools", 7, ("tools", "tools.*")),
    ("benchmarks", 7, ("benchmarks", "benchmarks.*")),
    ("tests", 8, ("tests", "tests.*", "conftest")),
]
PACKAGE = "fastformer"
MAX_PACKAGE_LINES = 450  # no file of the installed package longer than this
CHECK_LEVEL = 7  # reproduction, tools and benchmarks may share helpers with each other
NO_PATH_HACKS = ("tools", "benchmarks", "tests", "reproduction")
CHECK_ONLY = ("torch",)  # imported by the reproduction tools, never by the installed package
# installed names of folders that are packages under another name (pyproject.toml's package-dir): imported by it
IMPORT_NAMES = {"fastformer_data": "data_process"}
SKIP_DIRS = {".git", ".venv", "output", "data", "build", "__pycache__", "node_modules"}


@dataclass
class Module:
    name: str
    path: str
    lines: int
    imports: Set[str] = field(default_factory=set)  # resolved module names of the repository
    external: Set[str] = field(default_factory=set)  # other packages imported when the module loads
    path_hack: bool = False
    folder_names: Set[str] = field(default_factory=set)  # packages imported by folder name, not installed name


def room_of(name: str) -> Tuple[str, int]:
    for room, level, patterns in ROOMS:
        if any(fnmatchcase(name, p) for p in patterns):
            return room, level
    return "other", 9


def allowed(room: str, level: int, t_room: str, t_level: int) -> bool:
    """Own room, a lower level, or between check-only rooms."""
    return t_room == room or t_level < level or level == t_level == CHECK_LEVEL


def module_name(root: str, path: str) -> str:
    rel = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def find_modules(root: str) -> Dict[str, Module]:
    modules = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith(".venv"))
        for f in sorted(files):
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
                m = Module(module_name(root, path), path, text.count("\n"))
                m.tree = ast.parse(text, filename=path)  # type: ignore[attr-defined]
                m.path_hack = any(_edits_sys_path(node) for node in ast.walk(m.tree))  # type: ignore[attr-defined]
                modules[m.name] = m
    return modules


def _edits_sys_path(node: ast.AST) -> bool:
    """sys.path.insert(...) / sys.path.append(...)"""
    f = getattr(node, "func", None) if isinstance(node, ast.Call) else None
    return (isinstance(f, ast.Attribute) and f.attr in ("insert", "append") and isinstance(f.value, ast.Attribute)
            and f.value.attr == "path" and isinstance(f.value.value, ast.Name) and f.value.value.id == "sys")


def _import_nodes(tree: ast.AST, in_function: bool = False):
    """(import node, whether it runs only inside a function)"""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, in_function
        yield from _import_nodes(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))


def _resolve(name: str, known: Dict[str, Module]) -> Optional[str]:
    """The longest prefix of a dotted name that is a module of the repository."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        if candidate in known:
            return candidate
    return None


def read_imports(modules: Dict[str, Module]) -> None:
    for m in modules.values():
        is_package = m.path.endswith("__init__.py")
        package = m.name if is_package else m.name.rpartition(".")[0]
        for node, lazy in _import_nodes(m.tree):  # type: ignore[attr-defined]
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from .x import y / from . import y
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if base else a.name for a in node.names]
            absolute = isinstance(node, ast.Import) or not node.level
            for target in targets:
                first, _, rest = target.partition(".")
                if absolute and first in IMPORT_NAMES.values():
                    m.folder_names.add(first)
                if first in IMPORT_NAMES:
                    target = IMPORT_NAMES[first] + (f".{rest}" if rest else "")
                resolved = _resolve(target, modules)
                if resolved is None:
                    if not lazy:
                        m.external.add(target.split(".")[0])
                elif resolved != m.name:
                    m.imports.add(resolved)


def cycles(modules: Dict[str, Module]) -> List[List[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(modules[v].imports):
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
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))
    for v in sorted(modules):
        if v not in index:
            visit(v)
    return found


def problems(root: str) -> List[str]:
    modules = find_modules(root)
    read_imports(modules)
    out = []
    for m in sorted(modules.values(), key=lambda m: m.name):
        room, level = room_of(m.name)
        rel = os.path.relpath(m.path, root)
        for target in sorted(m.imports):
            if m.name.startswith(target + "."):
                continue  # a module's own parent package is imported by Python anyway
            t_room, t_level = room_of(target)
            if not allowed(room, level, t_room, t_level):
                way = "up" if t_level > level else "sideways"
                out.append(f"{rel}: imports {target} ({room} -> {t_room}, {way})")
        if m.name == PACKAGE or m.name.startswith(PACKAGE + "."):
            if m.lines > MAX_PACKAGE_LINES:
                out.append(f"{rel}: {m.lines} lines (the package's files stay under {MAX_PACKAGE_LINES})")
            for name in sorted(m.external & set(CHECK_ONLY)):
                out.append(f"{rel}: imports {name} (check-only code stays out of the installed package)")
        if m.path_hack and rel.split(os.sep)[0] in NO_PATH_HACKS:
            out.append(f"{rel}: edits sys.path (import the installed package instead)")
        for folder in sorted(m.folder_names):
            name = next(k for k, v in IMPORT_NAMES.items() if v == folder)
            out.append(f"{rel}: imports {folder} by its folder name (the installed name is {name})")
        if room == "other":
            out.append(f"{rel}: in no room (add a rule to ROOMS in tools/architecture.py)")
    out += [f"circle: {' -> '.join(c)}" for c in cycles(modules)]
    return out


def room_graph(root: str):
    modules = find_modules(root)
    read_imports(modules)
    members: Dict[str, List[Module]] = defaultdict(list)
    arrows: Dict[Tuple[str, str], int] = defaultdict(int)
    for m in modules.values():
        room = room_of(m.name)[0]
        members[room].append(m)
        for target in m.imports:
            t_room = room_of(target)[0]
            if t_room != room and not m.name.startswith(target + "."):
                arrows[(room, t_room)] += 1
    return members, arrows


def draw(root: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    members, arrows = room_graph(root)
    shown = [r for r, _, _ in ROOMS if r in members and r != "tests"]
    levels: Dict[int, List[str]] = defaultdict(list)
    for room, level, _ in ROOMS:
        if room in shown:
            levels[level].append(room)
    rows = sorted(levels)
    width, box_w, row_h = 12.0, 3.6, 1.6
    fig, ax = plt.subplots(figsize=(width, row_h * len(rows) + 0.6))
    centre: Dict[str, Tuple[float, float]] = {}
    for y, level in enumerate(rows):
        rooms = levels[level]
        for i, room in enumerate(rooms):
            x = width * (i + 0.5) / len(rooms)
            cy = y * row_h + 0.9
            centre[room] = (x, cy)
            files = sorted(os.path.relpath(m.path, root) for m in members[room])
            names = [os.path.basename(f)[:-3] if room not in ("scripts",) else os.path.basename(f) for f in files]
            if len(names) > 12:
                names = names[:11] + [f"... {len(names) - 11} more"]
            label = ", ".join(n for n in names if n != "__init__" or len(names) == 1)
            ax.add_patch(FancyBboxPatch((x - box_w / 2, cy - 0.5), box_w, 1.0, boxstyle="round,pad=0.05",
                                        fc="#eef3fb" if room not in ("reproduction", "tools", "benchmarks")
                                        else "#f3f3f3", ec="#34568b", lw=1.2))
            ax.text(x, cy + 0.3, f"{room}  ({len(files)} files)", ha="center", va="center", weight="bold",
                    fontsize=10)
            ax.text(x, cy - 0.12, _wrap(label, 48), ha="center", va="center", fontsize=7, color="#333333")
    level_of = {room: level for room, level, _ in ROOMS}
    shown_arrows = [(a, b, n) for (a, b), n in sorted(arrows.items()) if a in centre and b in centre]
    outgoing = defaultdict(list)
    incoming = defaultdict(list)
    for a, b, _ in shown_arrows:
        outgoing[a].append(b)
        incoming[b].append(a)
    for a, b, n in shown_arrows:
        (x1, y1), (x2, y2) = centre[a], centre[b]
        # spread the ends along the boxes' edges so that arrows do not lie on top of each other
        dx1 = (outgoing[a].index(b) + 0.5) / len(outgoing[a]) - 0.5
        dx2 = (incoming[b].index(a) + 0.5) / len(incoming[b]) - 0.5
        good = allowed(a, level_of[a], b, level_of[b])
        start = (x1 + dx1 * box_w * 0.9, y1 - 0.5 if y2 < y1 else y1 + 0.5)
        end = (x2 + dx2 * box_w * 0.9, y2 + 0.5 if y2 < y1 else y2 - 0.5)
        if y1 == y2:
            start, end = (x1 + (box_w / 2 if x2 > x1 else -box_w / 2), y1), (x2 - (box_w / 2 if x2 > x1 else -box_w / 2), y2)
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=9, lw=0.6 + min(n, 20) / 12,
                                     color="#7f8c8d" if good else "#c0392b", alpha=0.75 if good else 1.0))
    ax.set_xlim(0, width)
    ax.set_ylim(0, row_h * len(rows))
    ax.axis("off")
    ax.set_title("fastformer-paddle: rooms and the imports between them (an arrow points to what is imported; "
                 "red: against the layering)",
                 fontsize=10)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def _wrap(text: str, width: int) -> str:
    lines, line = [], ""
    for word in text.split(", "):
        if line and len(line) + len(word) + 2 > width:
            lines.append(line + ",")
            line = word
        else:
            line = f"{line}, {word}" if line else word
    return "\n".join(lines + [line])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser.add_argument("--check", action="store_true", help="list layering problems; exit 1 if there are any")
    parser.add_argument("--draw", metavar="PNG", help="draw the rooms and their imports into this PNG file")
    args = parser.parse_args(argv)
    if not args.check and not args.draw:
        parser.error("give --check, --draw PNG or both")
    status = 0
    if args.check:
        found = problems(args.root)
        for line in found:
            print(line)
        print(f"{len(found)} problem(s)" if found else "no circles, no upward or sideways imports, files in bounds")
        status = 1 if found else 0
    if args.draw:
        draw(args.root, args.draw)
        print(f"wrote {args.draw}")
    return status


if __name__ == "__main__":
    sys.exit(main())

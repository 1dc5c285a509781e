#!/usr/bin/env python3
"""Checks that src/'s modules use each other without circles, and prints the layer map.

A module is a file of src/ (`write::state` for src/write/state.rs, `write` for
src/write/mod.rs). An edge A -> B is a reference from A's code to an item of B: `crate::b::...`,
`super::...`, or, in a folder's mod.rs, a child module by its bare name. Two graphs must be
acyclic: the top-level one (folders and files directly in src/, e.g. `write` -> `pg`) and the
file-level one. Exit status 1, with the circle, when one is not. Run by scripts/test.sh (stage 0).
"""
import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"


def module_of(path):
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return "::".join(parts)


def strip(text):
    """Code and doc comments (a doc link names a module too), without plain comments, strings
    and #[cfg(test)] modules."""
    text = re.sub(r"#\[cfg\(any\(test, feature = \"pg_test\"\)\)\]\s*#\[pg_schema\]\s*mod tests \{.*", "", text, flags=re.S)
    text = re.sub(r"(?<![/:])//(?![/!])[^\n]*", "", text)
    text = re.sub(r'r#*"(?:.|\n)*?"#*', '""', text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    return text


def main():
    files = sorted(SRC.rglob("*.rs"))
    modules = {module_of(f): f for f in files}
    edges = {m: set() for m in modules}
    for m, f in modules.items():
        code = strip(f.read_text())
        parent = m.rsplit("::", 1)[0] if "::" in m else ""
        is_folder = f.name == "mod.rs"
        targets = set()
        for a, b in re.findall(r"crate::(\w+)(?:::(\w+))?", code):
            targets.add(f"{a}::{b}" if f"{a}::{b}" in modules else a)
        for group in re.findall(r"super::\{([^}]*)\}", code):
            for name in re.findall(r"\w+", group):
                full = f"{parent}::{name}" if parent else name
                targets.add(full if full in modules else parent)
        for name in re.findall(r"super::(\w+)", code):
            full = f"{parent}::{name}" if parent else name
            targets.add(full if full in modules else parent)
        if is_folder:
            for name in re.findall(r"(?<![:\w])(\w+)::", code):
                if f"{m}::{name}" in modules:
                    targets.add(f"{m}::{name}")
        edges[m] = {t for t in targets if t in modules and t != m}

    def top(mod):
        return mod.split("::")[0]

    top_edges = {}
    for m, ts in edges.items():
        if m == "":
            continue
        for t in ts:
            if top(t) != top(m):
                top_edges.setdefault(top(m), set()).add(top(t))
    ok = True
    for name, graph in (("top-level", top_edges), ("file-level", {k: v for k, v in edges.items() if k})):
        cycle = find_cycle(graph)
        if cycle:
            print(f"module circle ({name}): " + " -> ".join(cycle))
            ok = False
    if "--map" in sys.argv:
        for m in sorted(top_edges):
            print(f"{m} -> {', '.join(sorted(top_edges[m]))}")
    if ok:
        print(f"module graph: {len(modules)} modules, no circles")
    return 0 if ok else 1


def find_cycle(graph):
    state = {}
    stack = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for t in sorted(graph.get(n, ())):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state:
                c = visit(t)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            c = visit(n)
            if c:
                return c
    return None


if __name__ == "__main__":
    sys.exit(main())

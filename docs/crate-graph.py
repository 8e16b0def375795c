#!/usr/bin/env python3
"""The dependency graph of the host workspace's crates, as Mermaid (docs/ARCHITECTURE.md).

Reads `cargo metadata --format-version 1 --no-deps` from the repository root and prints a
Mermaid flowchart: workspace crates as boxes, their direct external dependencies as rounded
nodes; normal dependencies solid, dev-dependencies dashed (one line per crate and kind).

With --check it prints nothing and exits non-zero when an edge breaks the invariants the crates
exist for: klp-passes depends on no other crate of klp-wasm; klp-build (create-diff-object)
only on klp-passes and klp-abi, not on the core, an engine or the artifacts; klp-core, klp-shell and klp-web
reach neither wasmtime nor (except klp-web) klp-artifacts, even through another crate.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (crate, what it must not reach through its normal dependencies, workspace crates included)
FORBIDDEN = [
    ("klp-passes", {"klp-abi", "klp-core", "klp-shell", "klp-wasmtime", "klp-artifacts", "wasmtime"}),
    ("klp-build", {"klp-core", "klp-shell", "klp-wasmtime", "klp-artifacts", "wasmtime"}),
    ("klp-core", {"klp-shell", "klp-wasmtime", "klp-artifacts", "wasmtime"}),
    ("klp-shell", {"klp-wasmtime", "klp-artifacts", "wasmtime"}),
    ("klp-web", {"klp-wasmtime", "wasmtime"}),
]


def metadata():
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def edges(meta):
    """(from, to, kind) for every direct dependency of every workspace crate, kind None or 'dev'."""
    members = set(meta["workspace_members"])
    result = []
    for package in meta["packages"]:
        if package["id"] not in members:
            continue
        for dep in package["dependencies"]:
            if dep["kind"] == "build":
                continue
            result.append((package["name"], dep["name"], dep["kind"]))
    return sorted(set(result), key=lambda e: (e[0], e[2] or "", e[1]))


def node_id(name):
    return name.replace("-", "_")


def mermaid(meta):
    crates = sorted(p["name"] for p in meta["packages"] if p["id"] in meta["workspace_members"])
    deps = edges(meta)
    lines = ["graph TD"]
    for name in crates:
        lines.append(f"    {node_id(name)}[{name}]")
    for name in sorted({to for _, to, _ in deps} - set(crates)):
        lines.append(f"    {node_id(name)}([{name}])")
    grouped = {}
    for source, target, kind in deps:
        grouped.setdefault((source, kind or ""), []).append(node_id(target))
    for (source, kind), targets in grouped.items():
        arrow = "-.->" if kind == "dev" else "-->"
        lines.append(f"    {node_id(source)} {arrow} {' & '.join(targets)}")
    return "\n".join(lines)


def check(meta):
    normal = {}
    for source, target, kind in edges(meta):
        if kind is None:
            normal.setdefault(source, set()).add(target)
    failures = []
    for crate, forbidden in FORBIDDEN:
        reached, todo = set(), [crate]
        while todo:
            for dep in normal.get(todo.pop(), ()):
                if dep not in reached:
                    reached.add(dep)
                    todo.append(dep)
        failures += [f"{crate} depends on {dep}" for dep in sorted(reached & forbidden)]
    return failures


def main():
    meta = metadata()
    if sys.argv[1:] == ["--check"]:
        failures = check(meta)
        for failure in failures:
            print(f"crate-graph: {failure}", file=sys.stderr)
        sys.exit(1 if failures else 0)
    if sys.argv[1:]:
        sys.exit("usage: docs/crate-graph.py [--check]")
    print(mermaid(meta))


if __name__ == "__main__":
    main()

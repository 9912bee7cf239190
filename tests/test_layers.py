"""The layering the README promises, read from the source: every import (function-local ones
included) of every module is an edge, and an edge against the rules or a circle between packages
fails with the modules that make it.

Layers, bottom up: `system` (the system under test: imports nothing else), and `cluster` (many runs
on Dask: imports only `system`, used by both engines and the commands) → `formats`, the shared
formats (scenario, record, gates, the fault registry: neither engine owns them) → the engines,
`harness` (`emulate`, `proxy`, `prom`: the real-system side) and `sim` (the model), which never
import each other, and `reports` (run records only) → `commands` (the CLI), which nothing
imports. A `__main__.py` is an entry point like a command. `reports` reads run records through
the shared reader only (`formats.record.run`): it parses no file itself. `commands` parses other
files (scenarios, calibrations, a sweep's own table, server frames), but no table at all, and no
run-record file: a read of a path built from a record file's name (a literal such as
"summary.json" or a `formats.record.files` constant, directly or through a local name assigned
from one) is found. A path that reaches a read through a function's parameter is not: the check
reads one module at a time.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("system", "cluster", "formats", "harness", "sim", "reports", "commands")

# what each layer may import (besides itself)
ALLOWED = {
    "system": {"system"},
    "cluster": {"system", "cluster"},
    "formats": {"system", "formats"},
    "harness": {"system", "cluster", "formats", "harness"},
    "sim": {"system", "cluster", "formats", "sim"},
    "reports": {"system", "formats", "reports"},
    "commands": {"system", "cluster", "formats", "harness", "sim", "reports", "commands"},
}


def unit(module: str) -> str | None:
    """The package a module belongs to: a subpackage of `system`, `formats` or `harness`, else the top level."""
    parts = module.split(".")
    if parts[0] not in PACKAGES:
        return None
    return ".".join(parts[:2]) if parts[0] in ("system", "formats", "harness") and len(parts) > 1 else parts[0]


def layer(u: str) -> str:
    return u.split(".")[0]


def imports(root: Path = REPO) -> dict[str, set[str]]:
    """module -> every project module it imports (`from a import b` counts a and a.b)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    graph[module].update(a.name for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    graph[module].add(node.module)
                    graph[module].update(f"{node.module}.{a.name}" for a in node.names)
    return graph


def edges(root: Path = REPO) -> dict[tuple[str, str], set[str]]:
    """(from package, to package) -> the modules making that edge."""
    out: dict[tuple[str, str], set[str]] = defaultdict(set)
    for module, targets in imports(root).items():
        for target in targets:
            a, b = unit(module), unit(target)
            if a and b and a != b and b.split(".")[0] in PACKAGES:
                out[(a, b)].add(module)
    return out


# calls that parse a file's text: in `reports` only the shared reader's `read_json` may
PARSERS = {"read_csv", "read_table", "read_jsonl", "load", "loads", "DictReader"}


def own_parsing(root: Path = REPO, package: str = "reports") -> list[str]:
    """Each call in `package` that parses a file itself instead of through the shared record reader."""
    found = []
    for path in sorted((root / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if name in PARSERS:
                    found.append(f"{path.relative_to(root)}:{node.lineno}: {name}()")
    return found


# the tables' parsers: `commands` calls none of them (a table is read through `RunRecord`)
TABLE_PARSERS = {"read_csv", "read_table", "read_jsonl", "DictReader", "read_events"}
# calls that read a file's text or parse it; in `commands`, one naming a run-record file is reported
READERS = PARSERS | {"read_text", "read_bytes", "open"}


def record_file_names() -> set[str]:
    """The file names of the run record format (`formats.record.files`), read from its source."""
    tree = ast.parse((REPO / "formats" / "record" / "files.py").read_text())
    return {node.value.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            and node.value.value.endswith((".json", ".jsonl", ".csv"))}


def _call_name(node: ast.Call) -> str | None:
    return node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)


def record_reading(root: Path = REPO, package: str = "commands") -> list[str]:
    """Each call in `package` that parses a table, or reads a run-record file, itself."""
    names = record_file_names()
    found: list[tuple[str, int, str]] = []
    for path in sorted((root / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))

        def names_a_record_file(node: ast.AST, tainted: set[str]) -> bool:
            return any((isinstance(n, ast.Constant) and n.value in names)
                       or (isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "files"
                           and n.attr.isupper())
                       or (isinstance(n, ast.Name) and n.id in tainted) for n in ast.walk(node))

        tainted: set[str] = set()  # local names bound to a path built from a record file's name
        for _ in range(2):  # a name bound from a name bound from a file name
            for node in ast.walk(tree):
                if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None \
                        and names_a_record_file(node.value, tainted):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    tainted.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node)
            reads_record = name in READERS and names_a_record_file(node, tainted)
            if name in TABLE_PARSERS or reads_record:
                found.append((str(path.relative_to(root)), node.lineno, name))
    return [f"{path}:{line}: {name}()" for path, line, name in sorted(found)]


def violations(root: Path = REPO) -> list[str]:
    bad = []
    for (a, b), modules in sorted(edges(root).items()):
        modules = {m for m in modules if not m.endswith("__main__")}
        if modules and layer(b) not in ALLOWED[layer(a)]:
            bad.append(f"{a} -> {b} ({layer(a)} may not import {layer(b)}): {sorted(modules)}")
        elif modules and layer(b) == "commands" and layer(a) != "commands":
            bad.append(f"{a} -> {b}: nothing imports the commands: {sorted(modules)}")
    return bad


def circles(root: Path = REPO) -> list[str]:
    graph: dict[str, set[str]] = defaultdict(set)
    for (a, b), modules in edges(root).items():
        if not all(m.endswith("__main__") for m in modules):
            graph[a].add(b)
    found = []
    for start in sorted(graph):  # a path from a package back to itself
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph[node]):
                if nxt == start:
                    found.append(" -> ".join([*path, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    return sorted(set(found))


def test_every_import_points_down_the_layers() -> None:
    bad = violations()
    assert not bad, "\n".join(bad)


def test_no_circle_between_packages() -> None:
    found = circles()
    assert not found, "\n".join(found)


def test_reports_parse_no_record_file_themselves() -> None:
    found = own_parsing()
    assert not found, "\n".join(found)


def test_commands_read_no_table_nor_record_file_themselves() -> None:
    found = record_reading()
    assert not found, "\n".join(found)


def test_the_record_check_finds_a_command_reading_a_record_itself(tmp_path) -> None:
    """Each way the old `validate` read a record is reported; a command writing a record file, or
    reading a file of its own (a sweep's table), is not."""
    (tmp_path / "commands").mkdir()
    (tmp_path / "commands" / "validate.py").write_text(
        "import json\nimport pandas as pd\nfrom formats.record import files\n\n"
        "def peak(run_dir):\n"
        "    ts = run_dir / 'timeseries.csv'\n"
        "    return pd.read_csv(ts)\n\n"
        "def check(emu_dir):\n"
        "    meta = emu_dir / 'meta.json'\n"
        "    return json.loads(meta.read_text())\n\n"
        "def summary(d):\n"
        "    return json.loads((d / files.SUMMARY).read_text())\n\n"
        "def write(out, doc):\n"
        "    (out / files.SUMMARY).write_text(json.dumps(doc))\n"
        "    return json.loads((out / 'sweep.json').read_text())\n")
    assert record_reading(tmp_path) == [
        "commands/validate.py:7: read_csv()", "commands/validate.py:11: loads()",
        "commands/validate.py:11: read_text()", "commands/validate.py:14: loads()",
        "commands/validate.py:14: read_text()"]


def test_the_parsing_check_finds_a_report_reading_a_table_itself(tmp_path) -> None:
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "series.py").write_text(
        "import json\nimport pandas as pd\n\ndef rows(path):\n    json.dumps({})\n    return pd.read_csv(path)\n")
    assert own_parsing(tmp_path) == ["reports/series.py:6: read_csv()"]


def test_the_checker_reports_a_forbidden_edge_and_a_circle(tmp_path) -> None:
    """A model module importing the emulation (a function-local import), and two formats importing
    each other, are both reported."""
    files = {
        "sim/world.py": "def build():\n    from harness.emulate.plan import make_plan\n",
        "harness/emulate/plan.py": "from formats.scenario import draws\n",
        "formats/scenario/draws.py": "import formats.gates.spec\n",
        "formats/gates/spec.py": "from formats.scenario.model import FAULT_KINDS\n",
        "commands/cli.py": "import sim.world\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert violations(tmp_path) == ["sim -> harness.emulate (sim may not import harness): ['sim.world']"]
    assert circles(tmp_path) == ["formats.gates -> formats.scenario -> formats.gates",
                                 "formats.scenario -> formats.gates -> formats.scenario"]

"""The package's imports, read with ``ast`` (nothing imported): no import cycle between modules, and every import
of a perception module goes down perception.LAYERS or stays inside its own package or module."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

from perception import LAYERS

PACKAGE_ROOT = Path(__file__).resolve().parent.parent / "perception"


def module_files() -> Dict[str, Tuple[Path, bool]]:
    """Dotted module name -> (file, is a package __init__) for every module under perception/."""
    modules = {}
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def imported_modules(name: str, path: Path, is_package: bool, modules: Dict[str, Tuple[Path, bool]]
                     ) -> Set[Tuple[str, int]]:
    """(perception module, line) of every import in the file, at module level or inside a function (an import
    under ``if TYPE_CHECKING`` too); ``from package import name`` counts as an import of the submodule ``name``
    when there is one, else of the package."""
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.add((submodule if submodule in modules else source, node.lineno))
    return {(target, line) for target, line in found if target.split(".")[0] == "perception" and target in modules}


def import_graph() -> Dict[str, Set[Tuple[str, int]]]:
    modules = module_files()
    return {name: imported_modules(name, path, is_package, modules) for name, (path, is_package) in modules.items()}


def layer_of(module: str) -> Tuple[int, str]:
    """(layer index, the LAYERS entry holding ``module``: itself or a package above it)."""
    for index, layer in enumerate(LAYERS):
        for entry in layer:
            if module == entry or module.startswith(entry + "."):
                return index, entry
    raise LookupError(f"{module} is in no layer of perception.LAYERS")


def import_cycles(graph: Dict[str, Set[Tuple[str, int]]]) -> List[List[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    edges = {name: sorted({target for target, _ in targets if target != name}) for name, targets in graph.items()}
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return cycles


def upward_imports(graph: Dict[str, Set[Tuple[str, int]]]) -> List[str]:
    """'module:line -> target' for each import of a module in a layer not below the importer's own, other than
    one inside the importer's own LAYERS entry."""
    problems = []
    for name, targets in sorted(graph.items()):
        if name == "perception":
            continue
        own_layer, own_entry = layer_of(name)
        for target, line in sorted(targets):
            if target == "perception":
                problems.append(f"{name}:{line} -> {target} (the package root holds no code to import)")
                continue
            target_layer, target_entry = layer_of(target)
            if target_entry != own_entry and target_layer >= own_layer:
                problems.append(f"{name}:{line} -> {target}")
    return problems


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_every_module_has_a_layer(graph):
    unplaced = []
    for name in graph:
        try:
            if name != "perception":
                layer_of(name)
        except LookupError as error:
            unplaced.append(str(error))
    assert not unplaced


def test_no_import_cycle(graph):
    assert not import_cycles(graph)


def test_imports_go_down_the_layers(graph):
    assert not upward_imports(graph)


def test_the_checks_see_a_cycle_and_an_upward_import():
    """The checks on a hand-made graph: ops importing models (upward), two modules importing each other."""
    fake = {"perception.ops.a": {("perception.models.b", 3)}, "perception.models.b": {("perception.ops.a", 5)},
            "perception.geometry.c": set()}
    assert import_cycles(fake) == [["perception.models.b", "perception.ops.a"]]
    assert upward_imports(fake) == ["perception.ops.a:3 -> perception.models.b"]

"""The drawing of the imports, checked: no module imports a layer above its own (README, Development)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOORS = {"app", "studio.ui", "studio.server", "studio.speech", "studio.schemas", "studio.gate", "studio.connections",
         "studio.openai_compat"}
CORE = {"studio.studio", "studio.streaming"}
TOOLS = {"studio.export"}  # command-line tools over an engine's own code (python -m studio.export marvis)
RANK = {"nouns": 0, "engines": 1, "core": 2, "doors": 3}


def layer(module: str) -> str:
    if module in DOORS or module in TOOLS or module.startswith(("studio.ui.", "studio.browser")):
        return "doors"
    if module in CORE:
        return "core"
    if module.startswith("studio.engines"):
        return "engines"
    return "nouns"


def modules() -> dict[str, Path]:
    found = {"app": ROOT / "app.py"}
    for path in (ROOT / "studio").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path) -> set[str]:
    """Every studio module this one imports, at any depth of the file (lazy imports count too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    known = modules()
    return {module for module in found if module in known and module != "studio"}


def test_no_module_imports_a_layer_above_its_own():
    wrong = []
    for name, path in modules().items():
        if name == "studio":  # the public face re-exports the core
            continue
        for imported in imports(name, path):
            if RANK[layer(imported)] > RANK[layer(name)]:
                wrong.append(f"{name} ({layer(name)}) imports {imported} ({layer(imported)})")
    assert not wrong, "\n".join(wrong)


def test_doors_never_import_engines_and_engines_never_import_each_other():
    wrong = []
    for name, path in modules().items():
        for imported in imports(name, path):
            if layer(name) == "doors" and name not in TOOLS and layer(imported) == "engines":
                wrong.append(f"door {name} imports {imported}")
            mine, theirs = name.split("."), imported.split(".")
            folders = {"qwen", "chatterbox", "marvis", "remote"}
            if (len(mine) > 2 and len(theirs) > 2 and mine[1] == theirs[1] == "engines"
                    and mine[2] != theirs[2] and mine[2] in folders and theirs[2] in folders):
                wrong.append(f"engine {name} imports another engine's {imported}")
    assert not wrong, "\n".join(wrong)


def test_only_the_core_validates_text():
    users = {name for name, path in modules().items() if "validate_text" in path.read_text(encoding="utf-8")}
    assert users == {"studio.studio", "studio.text"}

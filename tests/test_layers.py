"""The packages' order: each imports only from the ones below it (imports inside functions count too)."""

import ast
from pathlib import Path

import forecast

# Lowest first. A package (or top-level module) may import from any name before it, never after.
ORDER = ["errors", "console", "stats", "data", "models", "config", "engine", "evaluate", "report", "tracking", "sweep",
         "commands", "cli", "__main__"]
ROOT = Path(forecast.__file__).parent


def _layer(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def _imports(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """``(line, absolute module)`` of every forecast import in ``path`` (a file under ``root``)."""
    module = "forecast." + ".".join(path.relative_to(root).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module.removesuffix(".__init__")
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" if target.count(".") == 0 else target for a in node.names]
            found += [(node.lineno, n) for n in names if n.startswith("forecast.")]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("forecast.")]
    return found


def test_every_package_has_a_place_in_the_order():
    layers = {p.stem if p.is_file() else p.name for p in ROOT.iterdir()
              if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()}
    assert layers <= set(ORDER), f"add {sorted(layers - set(ORDER))} to ORDER"


def test_no_import_runs_back_up():
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        own = path.relative_to(ROOT).parts[0].removesuffix(".py")
        for line, target in _imports(path):
            layer = _layer(target)
            if layer and layer != own and ORDER.index(layer) > ORDER.index(own):
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({own}) imports {target} ({layer})")
    assert not wrong, "imports that run back up a layer:\n" + "\n".join(wrong)


def test_the_order_catches_an_import_back_up(tmp_path):
    """The check itself: a models module importing the engine, relatively or not, is found."""
    probe = tmp_path / "forecast" / "models" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("from ..engine.walkforward import Fold\nimport forecast.commands.fit\n")
    found = [t for _, t in _imports(probe, tmp_path / "forecast")]
    assert found == ["forecast.engine.walkforward", "forecast.commands.fit"]
    assert all(ORDER.index(_layer(t)) > ORDER.index("models") for t in found)

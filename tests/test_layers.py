"""The package's layers: which sub-package may import which, and where pyspark may appear.

Every ``import`` and ``from ... import`` of every module is read from its source (those inside
functions included), so that a lazy import cannot break the rules unnoticed.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fmagenre"

BOTTOM = {"errors"}
#: Sub-packages each sub-package may import (itself and ``fmagenre.errors`` always).
ALLOWED = {
    "": {"audio"},  # fmagenre/__init__.py sets up the numba cache
    "errors": set(),
    "audio": set(),
    "labels": set(),
    "metrics": set(),
    "platform": set(),
    "tables": {"audio", "labels", "platform"},
    "extraction": {"audio", "labels", "platform", "tables"},
    "ml": {"audio", "labels", "metrics", "platform", "tables", "extraction"},
    # The spectrogram network, beside ml: it reuses ml's report writers and class weights.
    "network": {"audio", "labels", "metrics", "platform", "tables", "extraction", "ml"},
    "analysis": {"audio", "labels", "metrics", "platform", "tables", "extraction", "ml"}
    | {"network"},
    "synthetic": {"audio", "labels", "metrics", "platform", "tables", "extraction", "ml"},
    "timeline": {"audio", "labels", "metrics", "platform", "tables", "extraction", "ml"}
    | {"network", "similarity"},
    # Tracks like this one, in feature and embedding spaces (the network's among them).
    "similarity": {"audio", "labels", "metrics", "platform", "tables", "extraction", "ml"}
    | {"network"},
    # New uploads classified as they land: extraction and prediction in a streaming query.
    "watch": {"audio", "labels", "metrics", "platform", "tables", "extraction", "ml"}
    | {"network", "similarity"},
    "bench": {"audio", "labels", "metrics", "platform", "tables", "extraction", "ml"}
    | {"network", "analysis", "synthetic", "timeline", "similarity", "watch"},
}
#: Sub-packages that run without Spark: no pyspark import at all.
SPARK_FREE = {"", "errors", "audio", "labels", "metrics"}
#: The only sub-package that imports torch (the optional ``dl`` extra).
TORCH_USERS = {"network"}
#: Modules of the network that import torch themselves: only the network's users load them.
TORCH_MODULES = {"fmagenre.network.model", "fmagenre.network.ranks"}


def _layer(module: str) -> str:
    """``fmagenre.audio.features`` -> ``audio``; ``fmagenre`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports(source: str, module: str) -> set[str]:
    """Absolute names of the modules that ``source`` (module ``module``) imports."""
    found = set()
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found |= {f"{base}.{alias.name}" for alias in node.names} | {base}
    return found


def violations(module: str, source: str) -> list[str]:
    """The imports of ``module`` that break the layer rules: one line per forbidden layer."""
    layer = _layer(module)
    found = {}
    for name in sorted(imports(source, module)):
        top = name.split(".")[0]
        if top == "pyspark" and layer in SPARK_FREE:
            found.setdefault("pyspark", f"{module} imports {name}: it runs without Spark")
        if top == "torch" and layer not in TORCH_USERS:
            found.setdefault("torch", f"{module} imports {name}: only fmagenre.network may")
        if top != "fmagenre" or name == "fmagenre":
            continue
        target = _layer(name)
        if target not in (layer, *BOTTOM) and target not in ALLOWED[layer]:
            found.setdefault(target, f"{module} imports {name}: {layer} may not use {target}")
    return list(found.values())


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def test_every_module_belongs_to_a_known_layer():
    assert {_layer(name) for name, _ in _modules()} == set(ALLOWED)


def test_no_module_imports_a_higher_layer():
    broken = [line for name, path in _modules() for line in violations(name, path.read_text())]
    assert broken == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("fmagenre.audio.x", "import pyspark.sql", "it runs without Spark"),
        ("fmagenre.labels.x", "def f():\n    from fmagenre.tables import y", "may not use tables"),
        ("fmagenre.tables.x", "from ..ml import training", "may not use ml"),
        ("fmagenre.ml.x", "from fmagenre.analysis.inputs import z", "may not use analysis"),
        ("fmagenre.platform.x", "from fmagenre.audio import names", "may not use audio"),
        ("fmagenre.analysis.x", "import fmagenre.synthetic.music", "may not use synthetic"),
        ("fmagenre.ml.x", "def f():\n    import torch.nn", "only fmagenre.network may"),
        ("fmagenre.ml.x", "from fmagenre.network import model", "may not use network"),
    ],
)
def test_the_checker_sees_each_kind_of_broken_rule(module, source, expected):
    (found,) = violations(module, source)
    assert expected in found


def test_the_checker_accepts_allowed_imports():
    source = "from fmagenre.errors import InputError\nfrom . import names\nimport numpy"
    assert violations("fmagenre.audio.x", source) == []
    assert violations("fmagenre.ml.x", "from fmagenre.tables.inputs import read") == []


def test_the_spark_free_layers_load_no_pyspark():
    modules = [name for name, _ in _modules() if _layer(name) in SPARK_FREE]
    code = textwrap.dedent(
        f"""
        import importlib, sys
        for name in {modules!r}:
            if not name.endswith("__main__"):
                importlib.import_module(name)
        print(sorted(m for m in sys.modules if m.split(".")[0] == "pyspark"))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert result.stdout.strip() == "[]"


def test_the_library_without_torch_imports_all_but_the_network_s_torch_modules():
    """Torch blocked as where it is not installed: every other module still imports, and
    asking for the network says what to install."""
    modules = [
        name
        for name, _ in _modules()
        if name not in TORCH_MODULES and not name.endswith("__main__")
    ]
    code = textwrap.dedent(
        f"""
        import importlib, sys
        class NoTorch:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "torch":
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        sys.meta_path.insert(0, NoTorch())
        for name in {modules!r}:
            importlib.import_module(name)
        from fmagenre.network import require_torch
        try:
            require_torch()
        except Exception as error:
            print(type(error).__name__, error)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PACKAGE.parent,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        'TorchMissingError the spectrogram network needs PyTorch: pip install "fmagenre[dl]"'
    )

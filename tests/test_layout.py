"""The layout as a contract: one package per stage, stages meeting only through manifests/, one definition of
each shared rule."""
from __future__ import annotations

import ast
import graphlib
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("crawler", "curation", "training")
PACKAGES = ("manifests", *STAGES, "search", "demo")
# what each package may import of the project's own packages
ALLOWED = {
    "manifests": set(),
    "crawler": {"manifests"},
    "curation": {"manifests"},
    "training": {"manifests"},
    "search": {"manifests", "training"},
    "demo": set(PACKAGES),
}


def project_imports(path: Path) -> set[str]:
    """Top-level project packages a module imports (absolute imports, at any depth of the module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {n.split(".")[0] for n in names} & set(PACKAGES)
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_import_only_what_sits_below_them(package):
    bad = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        extra = project_imports(path) - ALLOWED[package] - {package}
        if extra:
            bad[str(path.relative_to(ROOT))] = sorted(extra)
    assert not bad, f"{package} imports outside its allowed set: {bad}"


def test_the_import_checker_sees_nested_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from curation.cli import main\n    import training.model\n")
    assert project_imports(module) == {"curation", "training"}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def intra_package_imports(package: str, root: Path = ROOT) -> dict[str, set[str]]:
    """{module: modules of the same package it imports}, relative and absolute imports at any depth (an import
    inside a function is still an import: it runs, and it ties the two files together)."""
    files = {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".")[:len(mod.split(".")) - node.level + (1 if is_pkg else 0)]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                # "from . import x" / "from .pkg import sub" name modules; "from .m import f" names m
                targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in files else origin for a in node.names]
            else:
                continue
            graph[mod] |= {t for t in targets if t in files and t != package and t != mod}
    return graph


def import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import loop of a module graph (its modules in order), None when the imports run one way."""
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as e:
        return e.args[1]
    return None


def test_curation_imports_run_one_way():
    """Readers of what users bring below the converters, the reports (Table 1, figures, headroom) on the readers
    only: no loop of imports inside curation/ (issue 19 found one of seven files)."""
    graph = intra_package_imports("curation")
    assert import_cycle(graph) is None, f"curation imports in a loop: {' -> '.join(import_cycle(graph))}"
    # the layers: a reader never reaches the pipeline, and neither do the reports
    def reach(mod):
        seen, todo = set(), [mod]
        while todo:
            for n in graph[todo.pop()] - seen:
                seen.add(n)
                todo.append(n)
        return seen
    for reader in ("sources", "audiocaps", "clotho", "folder", "published", "records", "table1", "stats", "figures"):
        assert "curation.pipeline" not in reach(f"curation.{reader}"), reader
    assert "curation.audio" not in reach("curation.stats")


def test_the_loop_finder_sees_relative_and_lazy_imports(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import f\n")
    (pkg / "b.py").write_text("def f():\n    from pkg import c\n")
    (pkg / "c.py").write_text("import os\nfrom . import a\n")
    graph = intra_package_imports("pkg", tmp_path)
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.c"}, "pkg.c": {"pkg.a"}}
    assert set(import_cycle(graph)) == {"pkg.a", "pkg.b", "pkg.c"}
    (pkg / "c.py").write_text("import os\n")
    assert import_cycle(intra_package_imports("pkg", tmp_path)) is None


def _definitions(pattern: str) -> list[str]:
    rx = re.compile(pattern, re.M)
    return [f"{p.relative_to(ROOT)}" for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))
            if rx.search(p.read_text(encoding="utf-8"))]


def test_one_definition_of_each_shared_rule():
    assert _definitions(r"^CAPTION_MODES\s*=") == ["manifests/captions.py"]
    assert _definitions(r"^def make_caption\(") == ["manifests/captions.py"]
    assert _definitions(r"^STATUSES\s*=") == ["manifests/crawl_record.py"]
    assert _definitions(r"^(FIELDS\s*=|class CrawlRecord\b)") == ["manifests/crawl_record.py"]
    assert _definitions(r"^ITEMS_FILE\s*=") == ["manifests/crawl_record.py"]
    assert _definitions(r"^def window_samples\(") == ["training/data.py"]
    # one file-hashing helper and one list of what the toolkit reads as audio, for every stage (issue 19)
    assert _definitions(r"^def (sha256_file|file_sha256|file_digests?|sha256_of_file)\(") == ["manifests/hashing.py"]
    assert _definitions(r"hashlib\.new\(|^\s*with open\(.*\"rb\"\)(?s:.{0,200})\.update\(") == ["manifests/hashing.py"]
    assert _definitions(r"^\s*\w*AUDIO_EXTENSIONS\s*=|^\s*\w*AUDIO_SUFFIXES\s*=") == ["manifests/audio_formats.py"]


def test_demo_config_is_package_data():
    from demo.run import DEMO_CONFIG

    assert DEMO_CONFIG.is_file() and DEMO_CONFIG.parent == ROOT / "demo"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "demo.json" in project["tool"]["setuptools"]["package-data"]["demo"]
    assert set(PACKAGES) <= {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}


GENERATED = ("data", "runs", "bench_out")  # folders the commands write: named as outputs, not shipped


def test_readmes_name_only_files_that_exist():
    missing = []
    for readme in [ROOT / "README.md", *sorted(ROOT.glob("*/README.md")), *sorted(ROOT.glob("*/*/README.md"))]:
        if ".venv" in readme.parts:
            continue
        text = readme.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#\s]+)\)", text):  # markdown links
            if "://" not in target and not (readme.parent / target).exists():
                missing.append(f"{readme.relative_to(ROOT)} -> {target}")
        for name in re.findall(r"`((?:[\w.-]+/)+[\w.-]+\.(?:py|json|md|csv))`", text):  # `folder/file.ext`
            generated = name.split("/")[0] in GENERATED
            if not (generated or (ROOT / name).exists() or (readme.parent / name).exists()):
                missing.append(f"{readme.relative_to(ROOT)} -> {name}")
    assert not missing, missing


@pytest.mark.skipif(__import__("shutil").which("make") is None, reason="make is not installed")
def test_make_help_names_every_variable():
    """README: "`make help` lists every target and variable" (the interpreter and venv location aside)."""
    import subprocess
    text = (ROOT / "Makefile").read_text()
    variables = set(re.findall(r"^([A-Z_]+)\s*\?=", text, re.M)) - {"PY", "VENV"}
    shown = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert variables and not [v for v in sorted(variables) if not re.search(rf"\b{v}\b", shown)]
    targets = set(re.findall(r"^([a-z-]+):.*## ", text, re.M))
    assert targets and all(re.search(rf"^{t}\s", shown, re.M) for t in targets)

"""The layout as a contract: one package per stage, stages meeting only through manifests/, one definition of
each shared rule."""
from __future__ import annotations

import ast
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

"""The package as users get it: a non-editable wheel, installed into a fresh environment, runs the quick demo
from a folder outside the checkout (package data, entry points, no path to the source tree), and its metadata
asks for ranges (torch as a range, the exact CPU pin only in constraints.txt) with an SPDX licence."""
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from email.parser import Parser
from pathlib import Path

from tests.test_layout import PACKAGES

REPO = Path(__file__).resolve().parents[1]


# no PYTHONPATH: the checkout must not be reachable from the installed package's processes
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def _run(args, **kw):
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, env=ENV, **kw)
    assert proc.returncode == 0, f"{args}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_wheel_installed_outside_the_checkout_runs_the_quick_demo(tmp_path):
    # build from a copy: a build writes build/ and *.egg-info next to the sources
    src = tmp_path / "src"
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist",
          src])
    [wheel] = (tmp_path / "dist").glob("wavtext5k-*.whl")
    with zipfile.ZipFile(wheel) as z:
        meta = Parser().parsestr(z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode())
    assert meta["License-Expression"] == "MIT" and meta["License"] is None
    torch_req = [r for r in meta.get_all("Requires-Dist") if r.startswith("torch")]
    assert torch_req == ["torch<3,>=2.3"], torch_req
    assert "torch==" in (REPO / "constraints.txt").read_text()

    # a fresh environment holding only the wheel; the dependencies (torch, ...) come from this interpreter's
    # site-packages through a .pth line, which adds the folder without running its .pth files, so that an
    # editable install of the checkout living there stays out
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    py = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps", "--no-index", wheel])
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run([py, "-c", "import crawler, curation, demo, manifests, search, training as t; "
                            "print('\\n'.join(m.__file__ for m in (crawler, curation, demo, manifests, search, t)))"],
                 cwd=elsewhere)
    assert all(Path(f).is_relative_to(site) for f in where.split()), where

    # `wt5k-demo --quick`, shortened further (40 sounds, one short epoch): the whole demo is tested from the
    # checkout by tests/test_demo.py; this test is about the installed package reaching every stage
    out = elsewhere / "demo"
    said = _run([venv / "bin" / "wt5k-demo", "--out", out, "--quick", "--quiet", "--sounds", "40", "epochs=1",
                 "data.samples_per_epoch=32", "val_every=1"], cwd=elsewhere)
    assert (out / "summary.json").is_file() and "where everything went" in said
    assert (out / "curated" / "wavtext5k.csv").is_file() and (out / "runs" / "demo" / "best.pt").is_file()

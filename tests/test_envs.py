"""Conda env files, checked honestly without conda (which cannot be installed here).

* every ``envs/*.yaml`` uses conda-forge, pins every package exactly, and has a pip section
  pinned with ``==``;
* every rule's ``conda:`` env exists, including the per-family envs the embed rule picks
  for every registered model;
* each env's pip section resolves for the env's Python version with
  ``pip install --dry-run --only-binary=:all: --python-version X.Y --target <tmp>``
  (needs the package index; skipped when it cannot be reached).
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from eoembed.models.registry import get_card, model_ids

ROOT = Path(__file__).resolve().parents[1]
ENVS = sorted((ROOT / "envs").glob("*.yaml"))
CONDA_PIN = re.compile(r"^[A-Za-z0-9_.-]+=[0-9][0-9A-Za-z._]*$")
PIP_PIN = re.compile(r"^[A-Za-z0-9_.\[\]-]+==[0-9][0-9A-Za-z._+-]*$")


def load(path):
    doc = yaml.safe_load(path.read_text())
    conda = [d for d in doc["dependencies"] if isinstance(d, str)]
    pip = next((d["pip"] for d in doc["dependencies"] if isinstance(d, dict) and "pip" in d), [])
    return doc, conda, pip


def test_there_are_env_files():
    assert {p.stem for p in ENVS} >= {"core"}


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_env_is_conda_forge_and_exactly_pinned(path):
    doc, conda, pip = load(path)
    assert doc["channels"][0] == "conda-forge", doc["channels"]
    assert "defaults" not in doc["channels"]
    assert any(d.startswith("python=") for d in conda)
    for dep in conda:
        assert CONDA_PIN.match(dep), f"{path.name}: conda dependency {dep!r} is not pinned exactly (name=X.Y.Z)"
    for dep in pip:
        assert PIP_PIN.match(dep), f"{path.name}: pip dependency {dep!r} is not pinned exactly (name==X.Y.Z)"


def test_every_rule_env_exists_including_each_model_family():
    referenced = set()
    for smk in (ROOT / "rules").glob("*.smk"):
        for rel in re.findall(r'conda:\s*\n\s*"([^"]+)"', smk.read_text()):
            referenced.add((ROOT / "rules" / rel).resolve())
    assert referenced, "no conda: directives found in rules/"
    embed = (ROOT / "rules" / "embed.smk").read_text()
    assert 'f"../envs/{CARDS[w.model].family}.yaml"' in embed
    for mid in model_ids():
        referenced.add((ROOT / "envs" / f"{get_card(mid).family}.yaml").resolve())
    missing = sorted(str(p.relative_to(ROOT)) for p in referenced if not p.exists())
    assert not missing, f"rules or model families use env files that do not exist: {missing}"


def _index_reachable() -> bool:
    probe = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                            "-d", "/tmp/eoembed-pip-probe", "six==1.16.0"], capture_output=True, text=True)
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_pip_section_resolves_for_the_env_python(path, tmp_path):
    if not _index_reachable():
        pytest.skip("the Python package index cannot be reached; pip resolution of envs/ not checked")
    _, conda, pip = load(path)
    py = next(d.split("=")[1] for d in conda if d.startswith("python="))
    major_minor = ".".join(py.split(".")[:2])
    req = tmp_path / "pip.txt"
    req.write_text("\n".join(pip) + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--only-binary=:all:",
         "--python-version", major_minor, "--target", str(tmp_path / "t"), "-r", str(req)],
        capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{path.name}: pip could not resolve for Python {major_minor}:\n{proc.stderr[-3000:]}"

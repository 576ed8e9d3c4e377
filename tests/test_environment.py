"""environment.yml and pyproject.toml pin the same requirements, and the venv matches them.

pyproject.toml is the source of truth: environment.yml's ``pip:`` section must list exactly its
``[project] dependencies`` plus the ``test`` extra (same names, same ``==`` pins) and ``-e .``.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
ENV_FILE = ROOT / "environment.yml"

TORCH_VERSION = "2.13.0"
CHECK_INSTALLED = ("torch", "numpy", "safetensors", "tokenizers")
EDITABLE = "-e ."

_REQ = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(\[[^\]]*\])?\s*(.*?)\s*$")
_PIN = re.compile(r"^==\s*([0-9][0-9A-Za-z.+!-]*)$")


def normalize(name: str) -> str:
    """PEP 503 name normalization: case-insensitive, runs of ``-_.`` are equivalent."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirement(req: str) -> tuple[str, str]:
    """``"Foo_Bar[x] == 1.2"`` -> ``("foo-bar", "==1.2")`` (extras dropped, spaces removed)."""
    m = _REQ.match(req.split(";", 1)[0])
    if m is None:
        raise ValueError(f"cannot parse requirement {req!r}")
    return normalize(m.group(1)), re.sub(r"\s+", "", m.group(3))


def as_mapping(reqs: list[str], where: str) -> dict[str, str]:
    """Requirement strings -> {normalized name: specifier}; a name listed twice is an error."""
    out: dict[str, str] = {}
    for req in reqs:
        name, spec = parse_requirement(req)
        assert name not in out, f"{name} is listed twice in {where}"
        out[name] = spec
    return out


def pin_of(spec: str) -> str | None:
    m = _PIN.match(spec)
    return m.group(1) if m and "*" not in spec else None


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads(PYPROJECT.read_text())


@pytest.fixture(scope="module")
def pyproject_reqs(pyproject) -> dict[str, str]:
    """The union of ``[project] dependencies`` and the ``test`` extra."""
    project = pyproject["project"]
    deps = as_mapping(project["dependencies"], "[project] dependencies")
    test = as_mapping(project["optional-dependencies"]["test"], "the test extra")
    for name in deps.keys() & test.keys():
        assert deps[name] == test[name], (
            f"pyproject.toml pins {name} differently in dependencies ({deps[name]}) and the "
            f"test extra ({test[name]})")
    return {**deps, **test}


@pytest.fixture(scope="module")
def env() -> dict:
    data = yaml.safe_load(ENV_FILE.read_text())
    assert isinstance(data, dict), "environment.yml must be a YAML mapping"
    return data


@pytest.fixture(scope="module")
def env_pip(env) -> list[str]:
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one `pip:` section"
    assert all(isinstance(r, str) for r in pip_sections[0])
    return [r.strip() for r in pip_sections[0]]


@pytest.fixture(scope="module")
def env_reqs(env_pip) -> dict[str, str]:
    return as_mapping([r for r in env_pip if not r.startswith("-")], "environment.yml")


def test_environment_file_shape(env):
    assert env["name"] == "solu-repro"
    assert env["channels"] == ["conda-forge"]
    conda_deps = [d for d in env["dependencies"] if isinstance(d, str)]
    assert "pip" in conda_deps
    pythons = [d for d in conda_deps if re.match(r"^python\s*(=|$)", d)]
    assert pythons == ["python=3.11"], f"expected python=3.11 in dependencies, got {pythons}"


def test_env_python_satisfies_requires_python(env, pyproject):
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    env_version = tuple(int(x) for x in python.split("=", 1)[1].split("."))
    m = re.fullmatch(r">=\s*(\d+)\.(\d+)", pyproject["project"]["requires-python"].strip())
    assert m, "update this test for the new form of requires-python"
    assert env_version >= (int(m.group(1)), int(m.group(2)))


def test_editable_install_listed(env_pip):
    assert EDITABLE in env_pip, "environment.yml's pip section must install the package (-e .)"
    assert [r for r in env_pip if r.startswith("-")] == [EDITABLE]


def test_pip_requirements_equal_pyproject(env_reqs, pyproject_reqs):
    """Same names and same specifiers: neither file can drift from the other."""
    only_env = sorted(env_reqs.keys() - pyproject_reqs.keys())
    only_pyproject = sorted(pyproject_reqs.keys() - env_reqs.keys())
    assert not only_env and not only_pyproject, (
        f"environment.yml lists {only_env} that pyproject.toml does not; pyproject.toml "
        f"(dependencies + test extra) lists {only_pyproject} that environment.yml does not")
    differing = {n: (env_reqs[n], pyproject_reqs[n]) for n in env_reqs
                 if env_reqs[n] != pyproject_reqs[n]}
    assert not differing, f"pins differ (environment.yml, pyproject.toml): {differing}"


@pytest.mark.parametrize("source", ["environment.yml", "pyproject.toml"])
def test_every_requirement_pinned(source, env_reqs, pyproject_reqs):
    reqs = env_reqs if source == "environment.yml" else pyproject_reqs
    unpinned = sorted(f"{n}{s}" if s else n for n, s in reqs.items() if pin_of(s) is None)
    assert not unpinned, f"{source}: not pinned with an exact ==version: {unpinned}"


def test_torch_pin(env_reqs, pyproject_reqs):
    assert env_reqs["torch"] == f"=={TORCH_VERSION}"
    assert pyproject_reqs["torch"] == f"=={TORCH_VERSION}"


@pytest.mark.parametrize("package", CHECK_INSTALLED)
def test_installed_version_matches_pin(package, pyproject_reqs):
    """Catches a stale venv. A local label (torch 2.13.0+cpu) matches an ==2.13.0 pin (PEP 440)."""
    pinned = pin_of(pyproject_reqs[normalize(package)])
    assert pinned is not None, f"{package} is not pinned in pyproject.toml"
    installed = metadata.version(package)
    assert installed.split("+", 1)[0] == pinned, (
        f"{package} {installed} is installed but pyproject.toml pins {pinned}: reinstall with "
        f"`pip install -e '.[test]'`")

"""pyproject.toml, the lock, environment.yml, the Makefile and the venv agree.

pyproject.toml is the source of truth for the direct requirements (each pinned with ``==``).
``constraints.txt`` locks the full transitive set (``make lock`` writes it with uv, with PyPI's
hashes; README, "The lock"); ``requirements/setup.txt`` and ``requirements/tl4.txt`` lock make
setup's own tools and TransformerLens 4.3. These tests fail when one of them drifts from
pyproject.toml, when the lock holds a package nothing asks for, and when the venv no longer
matches the lock. environment.yml's ``pip:`` section installs pyproject's direct pins through the
lock.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
ENV_FILE = ROOT / "environment.yml"
MAKEFILE = ROOT / "Makefile"
LOCK = ROOT / "constraints.txt"
SETUP_IN = ROOT / "requirements" / "setup.in"
SETUP_LOCK = ROOT / "requirements" / "setup.txt"
TL4_IN = ROOT / "requirements" / "tl4.in"
TL4_LOCK = ROOT / "requirements" / "tl4.txt"

REFRESH = "make lock"
STALE = (f"the lock is out of date: refresh it with `{REFRESH}` (README, \"The lock\") and "
         f"commit constraints.txt and requirements/*.txt")
REINSTALL = "the venv does not match the lock: run `make setup` (it reinstalls from the lock)"

TORCH_VERSION = "2.13.0"
LOCK_REF = "-c constraints.txt"
EDITABLE_CMD = "pip install --no-deps --no-build-isolation -e ."
PYPROJECT_ROOT = "solu-repro (pyproject.toml)"

# The platforms the lock must serve (README): Linux on x86_64 and aarch64, CPython 3.11 and 3.12.
TARGETS = {
    f"linux-{machine}-py{minor}": {
        "implementation_name": "cpython", "platform_python_implementation": "CPython",
        "os_name": "posix", "sys_platform": "linux", "platform_system": "Linux",
        "platform_machine": machine, "python_version": minor, "python_full_version": f"{minor}.0",
        "extra": "",
    }
    for machine in ("x86_64", "aarch64") for minor in ("3.11", "3.12")
}


def normalize(name: str) -> str:
    """PEP 503 name normalization: case-insensitive, runs of ``-_.`` are equivalent."""
    return canonicalize_name(name)


def parse_requirement(req: str) -> tuple[str, str]:
    """``"Foo_Bar[x] == 1.2"`` -> ``("foo-bar", "==1.2")`` (extras and markers dropped)."""
    r = Requirement(req)
    return normalize(r.name), str(r.specifier)


def as_mapping(reqs: list[str], where: str) -> dict[str, str]:
    """Requirement strings -> {normalized name: specifier}; a name listed twice is an error."""
    out: dict[str, str] = {}
    for req in reqs:
        name, spec = parse_requirement(req)
        assert name not in out, f"{name} is listed twice in {where}"
        out[name] = spec
    return out


def pin_of(spec: str) -> str | None:
    m = re.fullmatch(r"==([0-9][0-9A-Za-z.+!-]*)", spec)
    return m.group(1) if m else None


@dataclass(frozen=True)
class Pin:
    """One entry of a uv-compiled lock: ``name==version ; marker`` with its hashes and reasons."""
    name: str
    version: str
    marker: Marker | None
    hashes: tuple[str, ...]
    via: tuple[str, ...]

    def applies(self, env: dict[str, str]) -> bool:
        return self.marker is None or self.marker.evaluate(env)


def read_lock(path: Path) -> list[Pin]:
    """Parse a ``uv pip compile --generate-hashes`` file (annotations in uv's "split" style)."""
    text = path.read_text()
    # An entry starts at a line beginning with a package name; continuation lines are indented.
    pins = []
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        head = block.split("\\\n", 1)[0].strip()
        if not head or head.startswith("#"):
            continue
        assert not head.startswith("-"), f"{path.name}: unexpected option line {head!r}"
        req, _, marker = head.partition(";")
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", req.strip())
        assert m, f"{path.name}: not an exact pin: {head!r}"
        via = []
        for line in block.splitlines()[1:]:
            note = line.strip()
            if note.startswith("#"):
                note = note.lstrip("#").strip()
                note = note[len("via"):].strip() if note.split(" ", 1)[0] == "via" else note
                if note:
                    via.append(note)
        pins.append(Pin(normalize(m.group(1)), m.group(2),
                        Marker(marker.strip()) if marker.strip() else None,
                        tuple(re.findall(r"--hash=sha256:([0-9a-f]{64})", block)), tuple(via)))
    assert pins, f"{path.name} holds no pins"
    return pins


def pinned(pins: list[Pin], name: str, env: dict[str, str]) -> str | None:
    """The version a lock installs for ``name`` on ``env``; a lock with two is broken."""
    hits = [p.version for p in pins if p.name == normalize(name) and p.applies(env)]
    assert len(hits) <= 1, f"the lock pins {name} twice for one platform: {hits}"
    return hits[0] if hits else None


def unmet(reqs: list[str], pins: list[Pin], env: dict[str, str], exact: bool) -> list[str]:
    """Requirements (their markers evaluated on ``env``) the lock does not pin to a match.

    ``exact``: an ``==`` requirement must be pinned to the same version (not merely a local
    build of it), so that the lock and pyproject name one release.
    """
    bad = []
    for text in reqs:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        version = pinned(pins, req.name, env)
        if version is None:
            bad.append(f"{text} (not in the lock)")
        elif not req.specifier.contains(version, prereleases=True):
            bad.append(f"{text} (the lock pins {version})")
        elif exact and (want := pin_of(str(req.specifier))) and Version(want) != Version(version):
            bad.append(f"{text} (the lock pins {version})")
    return bad


def here() -> dict[str, str]:
    from packaging.markers import default_environment
    return {**default_environment(), "extra": ""}


# ---------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads(PYPROJECT.read_text())


@pytest.fixture(scope="module")
def direct(pyproject) -> list[str]:
    """pyproject's direct requirements as written: dependencies, the test and interop extras."""
    project = pyproject["project"]
    return (project["dependencies"] + project["optional-dependencies"]["test"]
            + project["optional-dependencies"]["interop"])


@pytest.fixture(scope="module")
def pyproject_reqs(pyproject) -> dict[str, str]:
    """The union of ``[project] dependencies`` and the ``test`` extra; an extra repeating a
    dependency must pin it the same way."""
    project = pyproject["project"]
    deps = as_mapping(project["dependencies"], "[project] dependencies")
    out = dict(deps)
    for extra in ("test", "interop"):
        reqs = as_mapping(project["optional-dependencies"][extra], f"the {extra} extra")
        for name in deps.keys() & reqs.keys():
            assert deps[name] == reqs[name], (
                f"pyproject.toml pins {name} differently in dependencies ({deps[name]}) and the "
                f"{extra} extra ({reqs[name]})")
        if extra == "test":
            out.update(reqs)
    return out


@pytest.fixture(scope="module")
def lock() -> list[Pin]:
    return read_lock(LOCK)


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


# ------------------------------------------------------------------------ pyproject itself

@pytest.mark.parametrize("source", ["environment.yml", "pyproject.toml"])
def test_every_requirement_pinned(source, env_reqs, pyproject_reqs):
    reqs = env_reqs if source == "environment.yml" else pyproject_reqs
    unpinned = sorted(f"{n}{s}" if s else n for n, s in reqs.items() if pin_of(s) is None)
    assert not unpinned, f"{source}: not pinned with an exact ==version: {unpinned}"


def test_torch_pin(env_reqs, pyproject_reqs):
    assert env_reqs["torch"] == f"=={TORCH_VERSION}"
    assert pyproject_reqs["torch"] == f"=={TORCH_VERSION}"


def test_makefile_installs_the_same_torch(pyproject_reqs):
    """make setup installs torch on its own line, before the lock; it must be pyproject's pin."""
    m = re.search(r"^TORCH_PIN\s*:=\s*(\S+)\s*$", MAKEFILE.read_text(), re.M)
    assert m, "Makefile: no `TORCH_PIN := torch==...` line"
    assert parse_requirement(m.group(1)) == ("torch", pyproject_reqs["torch"])


def test_makefile_installs_through_the_lock():
    """make setup reruns when a lock changes, and `make lock` is the refresh the README names."""
    text = MAKEFILE.read_text()
    files = dict(re.findall(r"^(LOCK|SETUP_LOCK|TL4_LOCK)\s*:=\s*(\S+)\s*$", text, re.M))
    assert {k: ROOT / v for k, v in files.items()} == {
        "LOCK": LOCK, "SETUP_LOCK": SETUP_LOCK, "TL4_LOCK": TL4_LOCK}, f"Makefile: {files}"
    stamp = re.search(r"^\$\(BIN\)/\.installed:(.*)$", text, re.M)
    assert stamp, "Makefile: no `$(BIN)/.installed:` rule"
    missing = {"pyproject.toml", "$(LOCK)", "$(SETUP_LOCK)", "$(TL4_LOCK)"} - set(stamp.group(1).split())
    assert not missing, f"Makefile: $(BIN)/.installed does not depend on {sorted(missing)}"
    assert re.search(r"^lock:", text, re.M), "Makefile: no `lock` target"
    assert f"`{REFRESH}`" in (ROOT / "README.md").read_text(), f"README must name `{REFRESH}`"


# ------------------------------------------------------------------------------- the lock

@pytest.mark.parametrize("target", sorted(TARGETS))
def test_lock_pins_pyproject_exactly(target, lock, direct):
    """Every direct requirement is in the lock at exactly pyproject's version, on every target."""
    bad = unmet(direct, lock, TARGETS[target], exact=True)
    assert not bad, f"constraints.txt disagrees with pyproject.toml on {target}: {bad}; {STALE}"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_lock_pins_setup_tools_and_build_backend(target, lock, pyproject):
    """make setup's pip and setuptools, and pyproject's build requirement, are locked."""
    reqs = [r for r in (ln.split("#", 1)[0].strip() for ln in SETUP_IN.read_text().splitlines())
            if r] + pyproject["build-system"]["requires"]
    bad = unmet(reqs, lock, TARGETS[target], exact=True)
    assert not bad, f"constraints.txt disagrees with requirements/setup.in on {target}: {bad}; {STALE}"


def test_setup_lock_matches_lock(lock):
    """requirements/setup.txt (pip bootstraps from it) pins what constraints.txt pins."""
    setup = read_lock(SETUP_LOCK)
    env = TARGETS["linux-x86_64-py3.11"]
    differing = {p.name: (p.version, pinned(lock, p.name, env)) for p in setup
                 if p.version != pinned(lock, p.name, env)}
    assert not differing, f"requirements/setup.txt vs constraints.txt: {differing}; {STALE}"
    wanted = {parse_requirement(r)[0] for r in
              (ln.split("#", 1)[0].strip() for ln in SETUP_IN.read_text().splitlines()) if r}
    assert {p.name for p in setup} == wanted, f"requirements/setup.txt vs setup.in; {STALE}"


@pytest.mark.parametrize("path", [LOCK, SETUP_LOCK, TL4_LOCK], ids=lambda p: p.name)
def test_every_pin_has_hashes(path):
    """pip's hash-checking mode needs a hash on every pin; uv writes PyPI's for every file."""
    missing = [p.name for p in read_lock(path) if not p.hashes]
    assert not missing, f"{path.name}: pins without --hash: {missing}; {STALE}"
    header = path.read_text().splitlines()[:2]
    assert header[-1].strip("# ").strip() == REFRESH, (
        f"{path.name} was not written by `{REFRESH}` (its header says {header!r})")


def test_lock_holds_nothing_unexplained(lock):
    """Each pin is wanted by pyproject, requirements/setup.in or another pin that is itself
    wanted (uv's ``# via`` annotations): a hand-added or orphaned entry fails."""
    names = {p.name for p in lock}
    roots = {PYPROJECT_ROOT, "-r requirements/setup.in"}
    unknown = {p.name: [v for v in p.via if v not in roots and normalize(v) not in names]
               for p in lock}
    unknown = {k: v for k, v in unknown.items() if v}
    assert not unknown, f"constraints.txt: pins wanted by something outside it: {unknown}; {STALE}"
    reached = {p.name for p in lock if roots & set(p.via)}
    grew = True
    while grew:
        new = {p.name for p in lock if p.name not in reached
               and any(normalize(v) in reached for v in p.via)}
        reached |= new
        grew = bool(new)
    assert reached == names, (
        f"constraints.txt: pins nothing in pyproject.toml leads to: {sorted(names - reached)}; "
        f"{STALE}")


def test_lock_is_closed_here(lock, direct):
    """Every package the set needs here (pyproject's requirements, then theirs, with the extras
    asked of them, read from the installed metadata) is pinned in the lock at a version that
    satisfies each requirement: the lock is complete for this platform."""
    env = here()
    wanted: dict[str, set[str]] = {}   # package -> the extras asked of it
    queue = [Requirement(r) for r in direct]
    bad = []
    while queue:
        req = queue.pop()
        name = normalize(req.name)
        if name == "solu-repro":
            continue
        version = pinned(lock, name, env)
        if version is None or not req.specifier.contains(version, prereleases=True):
            bad.append(f"{req} (the lock pins {version})")
            continue
        new = set(req.extras) | {""}
        if name in wanted and new <= wanted[name]:
            continue
        wanted.setdefault(name, set()).update(new)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            bad.append(f"{name} (locked {version}) is not installed: {REINSTALL}")
            continue
        for text in dist.requires or []:
            sub = Requirement(text)
            if sub.marker is None or any(sub.marker.evaluate({**env, "extra": e})
                                         for e in wanted[name]):
                queue.append(sub)
    assert not bad, f"constraints.txt does not meet these requirements here: {bad}; {STALE}"


# ------------------------------------------------------------------------ TransformerLens 4

def tl4_site() -> Path:
    """Where make setup puts TL 4.3 (``$SOLU_TL4_SITE`` overrides)."""
    return Path(os.environ.get("SOLU_TL4_SITE") or Path(sys.prefix) / "tl4")


@pytest.fixture(scope="module")
def tl4_metadata():
    pins = read_lock(TL4_LOCK)
    assert [p.name for p in pins] == ["transformer-lens"], "requirements/tl4.txt: TL only"
    want = pins[0].version
    infos = sorted(tl4_site().glob("transformer_lens-*.dist-info"))
    if not infos:
        pytest.skip(f"no TransformerLens 4 in {tl4_site()} (make setup installs it there)")
    dist = metadata.PathDistribution(infos[-1])
    assert [i.name for i in infos] == [f"transformer_lens-{want}.dist-info"], (
        f"{tl4_site()} holds {[i.name for i in infos]}, requirements/tl4.txt pins {want}: "
        f"run `make setup`")
    return dist


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_lock_satisfies_tl4(target, lock, tl4_metadata):
    """TL 4.3 is installed without its dependencies; the main lock must meet them, or a lock
    refresh would break the TL 4 interop tests."""
    reqs = [r for r in tl4_metadata.requires or []]
    assert reqs, "TransformerLens 4's METADATA lists no requirements"
    bad = unmet(reqs, lock, TARGETS[target], exact=False)
    assert not bad, (
        f"constraints.txt does not meet TransformerLens {tl4_metadata.version}'s requirements on "
        f"{target}: {bad}; the TL 4 interop tests would run against versions it does not "
        f"support: pin one that meets both in pyproject.toml, then run `{REFRESH}`")


# ------------------------------------------------------------------------------ the venv

def test_installed_direct_requirements_match_lock(lock, direct):
    """Catches a stale venv. A local build label (torch 2.13.0+cpu) matches a 2.13.0 pin."""
    env = here()
    bad = []
    for text in direct:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        want = pinned(lock, req.name, env)
        try:
            got = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            bad.append(f"{req.name} is not installed (the lock pins {want})")
            continue
        if want is None or Version(got).public != Version(want).public:
            bad.append(f"{req.name} {got} is installed, the lock pins {want}")
    assert not bad, f"{bad}: {REINSTALL}"


def test_installed_locked_packages_match_lock(lock):
    """Every locked package that is installed here is at the locked version."""
    env = here()
    bad = []
    for p in lock:
        if not p.applies(env):
            continue
        try:
            got = metadata.version(p.name)
        except metadata.PackageNotFoundError:
            continue  # e.g. the CUDA packages, which the CPU-only torch does not need
        if Version(got).public != Version(p.version).public:
            bad.append(f"{p.name} {got} (locked {p.version})")
    assert not bad, f"installed at other versions: {bad}; {REINSTALL}"


# ------------------------------------------------------------------------- environment.yml

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


def test_environment_installs_through_the_lock(env_pip):
    """The pip section's only option is the lock; the package itself is installed by the
    documented second command (pip cannot hash a directory, so `-e .` cannot sit beside a
    hashed lock)."""
    assert [r for r in env_pip if r.startswith("-")] == [LOCK_REF], (
        f"environment.yml's pip section must start from `{LOCK_REF}` and hold no other option")
    assert EDITABLE_CMD in ENV_FILE.read_text(), f"environment.yml must document `{EDITABLE_CMD}`"


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

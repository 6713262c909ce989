"""What pyproject.toml declares matches what ldwseg imports; LICENSE, CITATION.cff and CHANGELOG.md are there."""

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml

import ldwseg

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted((REPO / "ldwseg").rglob("*.py"))

# import name (or dotted module) -> the distribution that provides it, where the two differ
DISTRIBUTIONS = {
    "cv2": "opencv-python-headless",
    "PIL": "Pillow",
    "pywt": "PyWavelets",
    "skimage": "scikit-image",
    "yaml": "PyYAML",
    "torch.utils.tensorboard": "tensorboard",  # torch's writer needs the tensorboard package
}


def norm(name: str) -> str:
    """A distribution name in its normalised form (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return norm(re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0])


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def distribution_of(module: str) -> str | None:
    """The distribution of an absolutely imported ``module``, or None for the standard library and ldwseg."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in DISTRIBUTIONS:
            return norm(DISTRIBUTIONS[".".join(parts[:n])])
    if parts[0] in sys.stdlib_module_names or parts[0] in ("ldwseg", "__future__"):
        return None
    return norm(parts[0])


def imports(tree: ast.AST) -> list[tuple[str, bool]]:
    """``(module, inside_a_function)`` for each absolute import of a parsed module."""
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((alias.name, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.append((child.module, in_function))
                found.extend((f"{child.module}.{alias.name}", in_function) for alias in child.names)
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
    return found


def imported_distributions() -> dict[str, dict[str, bool]]:
    """Distribution -> {"file:line" of a use: whether only inside functions} over every module of ldwseg."""
    uses: dict[str, dict[str, bool]] = {}
    for path in SOURCES:
        where = str(path.relative_to(REPO))
        for module, in_function in imports(ast.parse(path.read_text(encoding="utf-8"), filename=where)):
            dist = distribution_of(module)
            if dist is not None:
                uses.setdefault(dist, {})
                uses[dist][where] = uses[dist].get(where, True) and in_function
    return uses


def test_the_import_walk_sees_every_kind_of_import():
    tree = ast.parse(
        "import numpy as np\nfrom PIL import Image\nfrom . import x\nimport os.path\n"
        "def f():\n    from torch.utils.tensorboard import SummaryWriter\n"
    )
    assert {(distribution_of(m), f) for m, f in imports(tree)} == {
        ("numpy", False), ("pillow", False), (None, False), ("tensorboard", True),
    }  # fmt: skip


def test_every_imported_package_is_declared():
    project = pyproject()["project"]
    core = {requirement_name(r) for r in project["dependencies"]}
    extras = {requirement_name(r) for reqs in project["optional-dependencies"].values() for r in reqs}
    undeclared = []
    for dist, files in imported_distributions().items():
        if dist in core:
            continue
        if all(files.values()) and dist in extras:  # imported lazily, for an optional feature
            continue
        where = ", ".join(sorted(files))
        kind = "inside functions only" if all(files.values()) else "at module level"
        undeclared.append(f"{dist} ({kind}: {where})")
    assert not undeclared, (
        "imported by ldwseg but not declared in pyproject.toml's dependencies (or, when imported only inside "
        f"functions, in an extra): {'; '.join(undeclared)}; declare it, or map its import name in DISTRIBUTIONS"
    )


def test_every_declared_dependency_is_imported():
    used = imported_distributions()
    unused = [r for r in pyproject()["project"]["dependencies"] if requirement_name(r) not in used]
    assert not unused, f"declared in pyproject.toml but imported nowhere in ldwseg: {unused}"


def test_every_dependency_has_a_floor():
    """.ci/floors installs each dependency at its floor, so each one needs one (and no upper bound)."""
    for requirement in pyproject()["project"]["dependencies"]:
        assert re.fullmatch(r"[A-Za-z0-9_.-]+>=[0-9][0-9A-Za-z.]*", requirement), requirement


def test_the_version_is_read_from_the_package():
    config = pyproject()
    assert "version" in config["project"]["dynamic"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "ldwseg.version.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", ldwseg.__version__)


def test_license_matches_pyproject():
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n") and "the ldwseg authors" in text
    assert pyproject()["project"]["license"] == "MIT"


def test_citation_file_is_valid_and_current():
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0"
    assert str(cff["version"]) == ldwseg.__version__
    assert cff["title"] and cff["authors"] and cff["message"]
    paper = cff["preferred-citation"]
    assert "Learnable Discrete Wavelet Pooling" in paper["title"]
    assert [a["family-names"] for a in paper["authors"]] == ["Wang", "Hsieh", "Chang", "Chen", "Ke", "Lyu"]
    assert paper["year"] == 2022


def test_changelog_has_an_entry_for_this_version():
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    versions = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", text, flags=re.MULTILINE)
    assert versions and versions[0] == ldwseg.__version__, versions
    assert "0.1.0" in versions

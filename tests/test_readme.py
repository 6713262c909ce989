"""The Python examples of the README and of the manual (docs/*.md) run as written."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SNIPPETS = [
    (page.name, snippet)
    for page in PAGES
    for snippet in re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
]


def test_the_readme_has_examples():
    assert sum(name == "README.md" for name, _ in SNIPPETS) >= 2


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # files the example writes land here
    name, snippet = SNIPPETS[index]
    first = snippet.splitlines()[0]
    if first.startswith("# requires: "):  # an example of a library ldwseg does not depend on
        pytest.importorskip(first.removeprefix("# requires: ").strip())
    exec(compile(snippet, f"{name} snippet {index + 1}", "exec"), {"__name__": "__readme__"})

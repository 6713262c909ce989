"""The examples in the docstrings run and print what they say."""

import doctest
import importlib
import pkgutil

import pytest

import ldwseg


def _modules_with_examples() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(ldwseg.__path__, "ldwseg."):
        if info.name.endswith("__main__"):  # importing it runs the command line
            continue
        module = importlib.import_module(info.name)
        if any(t.examples for t in doctest.DocTestFinder().find(module)):
            names.append(info.name)
    return names


MODULES = _modules_with_examples()


def test_examples_exist():
    assert {"ldwseg.pooling.functional", "ldwseg.pooling.modules", "ldwseg.seg.metrics"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (see the output above)"

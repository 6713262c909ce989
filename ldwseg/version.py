"""The release of ldwseg; pyproject.toml reads it from here (``[tool.setuptools.dynamic]``).

A module of its own, with no imports, so that setuptools reads it without importing the
package and the modules that record the release (checkpoints, model cards, ``--version``)
need nothing above them.
"""

__version__ = "0.2.0"

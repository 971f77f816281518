"""xarray's backend test classes, run against our store: the fixtures and markers they use.

xarray's own repository-level conftest (not installed with xarray) implements ``skip_if_param``
(here) and registers its markers (in ``pyproject.toml``: they must be known before xarray's test
modules are imported); the installed ``xarray.tests.conftest`` holds the fixtures.
"""

from __future__ import annotations

import pytest
import xarray as xr
from xarray.tests.conftest import use_dask  # noqa: F401  # a fixture the suite uses

# Importing xarray's test package turns on its warning for files left open, process-wide; that
# is xarray's policy for its own suite, not ours (and it would fire in unrelated tests).
xr.set_options(warn_for_unclosed_files=False)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``skip_if_param(name=value, reason=..., condition=...)``: skip where the test's parameters match."""
    callspec = getattr(item, "callspec", None)
    for mark in item.iter_markers("skip_if_param"):
        wanted = {k: v for k, v in mark.kwargs.items() if k not in ("reason", "condition")}
        matches = callspec is not None and all(
            callspec.params.get(name) == value for name, value in wanted.items()
        )
        if matches and mark.kwargs.get("condition", True):
            pytest.skip(mark.kwargs.get("reason", "skipped by xarray's suite for these parameters"))

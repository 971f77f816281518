"""xarray's backend test classes, run against our store: the markers and fixtures they use.

xarray's own repository-level conftest (not installed with xarray) registers these markers and
implements ``skip_if_param``; the installed ``xarray.tests.conftest`` holds the fixtures.
"""

from __future__ import annotations

import pytest
from xarray.tests.conftest import use_dask  # noqa: F401  # a fixture the suite uses

_MARKERS = ("flaky", "network", "slow_hypothesis", "skip_if_param", "skip_with_dask_array")


def pytest_configure(config: pytest.Config) -> None:
    for marker in _MARKERS:
        config.addinivalue_line("markers", f"{marker}: a marker of xarray's own test suite")


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

"""The allocator tuning that train/sweep/ablate/bench apply (timings are never asserted)."""

import platform

import pytest

from ldwseg.allocator import ENV, keep_freed_memory


def test_can_be_turned_off(monkeypatch):
    monkeypatch.setenv(ENV, "default")
    assert keep_freed_memory() is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_accepts_the_settings(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert keep_freed_memory() is True

"""The suite itself in CI: a test that needs Apertium fails there when Apertium is missing, instead
of skipping, since CI's set-up installs it (conftest.require_apertium)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.parametrize("ci, outcome", [(None, "1 skipped"), ("true", "1 error")])
def test_a_missing_apertium_skips_outside_ci_and_fails_in_ci(tmp_path, ci, outcome):
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = str(tmp_path)  # no Apertium program on it: missing() says so
    if ci:
        env["CI"] = ci
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/test_translate.py::test_english_to_french_and_back"],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert outcome in out.stdout, out.stdout + out.stderr
    assert (out.returncode == 0) == (ci is None)
    if ci:
        assert "CI is set and this test needs Apertium: Apertium is not installed" in out.stdout

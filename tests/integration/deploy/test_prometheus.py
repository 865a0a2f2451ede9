"""Prometheus config and alert rules: `promtool check config`, `check rules` and `test rules`.

promtool comes from Debian's `prometheus` package (`apt-get install -y prometheus`). Without it
the tests skip locally and fail in CI (CI=true), like the storage tests without their servers.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest
import yaml

DEPLOY = pathlib.Path(__file__).resolve().parents[3] / "deploy"
PROMTOOL_SECONDS_MAX = 60


def promtool() -> str:
    """Path of promtool, or skip (locally) / fail (CI)."""
    path = shutil.which("promtool")
    if path is None:
        message = "promtool not found: apt-get install -y prometheus"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def run_promtool(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run promtool in deploy/ (rule files are referenced relative to it)."""
    return subprocess.run(
        [promtool(), *arguments],
        cwd=DEPLOY,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_SECONDS_MAX,
        check=False,
    )


def test_alert_rules_pass_promtool_check() -> None:
    """The rule file parses and every expression is valid PromQL."""
    result = run_promtool("check", "rules", "alert-rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_passes_promtool_check() -> None:
    """The scrape config (with its rule file) is valid."""
    result = run_promtool("check", "config", "--syntax-only", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_fire_on_their_conditions_only() -> None:
    """alert-rules.test.yml feeds series to each rule and states which alerts must (not) fire."""
    result = run_promtool("test", "rules", "alert-rules.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rejects_a_broken_rule(tmp_path: pathlib.Path) -> None:
    """The check can fail: an invalid expression is refused."""
    broken = tmp_path / "broken.yml"
    broken.write_text("groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: sum(rate(x[5m])\n")
    result = run_promtool("check", "rules", str(broken))
    assert result.returncode != 0


def test_every_alert_has_a_runbook_section() -> None:
    """Each alert's runbook_url anchor exists in docs/operations.md."""
    runbook = (DEPLOY.parent / "docs" / "operations.md").read_text().lower()
    rules = yaml.safe_load((DEPLOY / "alert-rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
            assert f"### {anchor}" in runbook or f'id="{anchor}"' in runbook, anchor
            assert rule["labels"]["severity"] in {"page", "ticket"}

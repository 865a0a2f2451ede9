"""Every metric the alert rules query is one the code actually exports (names drift otherwise)."""

from __future__ import annotations

import pathlib
import re

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOURCES = ("chassis", "gateway", "payments_svc", "vault_svc", "ledger_svc", "provider_sim")
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def _defined_metrics() -> set[str]:
    names: set[str] = set()
    for folder in SOURCES:
        for path in (ROOT / folder).rglob("*.py"):
            names.update(re.findall(r"[\"'](clearhouse_[a-z0-9_]+)[\"']", path.read_text()))
    return names


def _queried_metrics() -> set[str]:
    rules = yaml.safe_load((ROOT / "deploy" / "alert-rules.yml").read_text())
    queried: set[str] = set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            for found in re.findall(r"\b(clearhouse_[a-z0-9_]+)", rule["expr"]):
                base = found
                for suffix in HISTOGRAM_SUFFIXES:
                    base = base.removesuffix(suffix)
                queried.add(base)
    return queried


def test_alert_rules_query_only_exported_metrics() -> None:
    queried = _queried_metrics()
    assert queried, "the alert rules query no clearhouse_ metric at all"
    missing = sorted(queried - _defined_metrics())
    assert not missing, f"alert rules query metrics no process exports: {missing}"

"""The alert rules only reference metrics d1cdc actually exports."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import worker.metrics  # noqa: F401  (registers the consumer's metrics)
from worker.verify.metrics_file import write_verify_metrics
from worker.verify.runner import TableReport

RULES = Path(__file__).parent.parent / "ops" / "prometheus" / "alerts.yml"


def exported_names(registry: CollectorRegistry) -> set[str]:
    names = set()
    for family in registry.collect():
        names.update(sample.name for sample in family.samples)
        names.add(family.name)
        if family.type == "counter":  # a labelled counter has no sample before first use
            names.add(family.name + "_total")
    return names


def test_every_metric_in_the_alert_rules_is_exported(tmp_path: Path) -> None:
    """A renamed metric would silently disable an alert; this catches it."""
    textfile = tmp_path / "verify.prom"
    write_verify_metrics(textfile, [TableReport("user", processed=3, matching=2, missing=1)])
    verify_names = {
        s.name
        for family in text_string_to_metric_families(textfile.read_text())
        for s in family.samples
    }
    exported = exported_names(REGISTRY) | verify_names
    referenced = set(re.findall(r"\bd1cdc_[a-z_]+", RULES.read_text()))
    assert referenced, "no metric referenced: the rules file was not read"
    assert referenced - exported == set()


def test_verify_textfile_reports_differences_per_category(tmp_path: Path) -> None:
    """The row-delta alert sums d1cdc_verify_differences: the file must carry each category."""
    textfile = tmp_path / "verify.prom"
    write_verify_metrics(textfile, [TableReport("user", missing=2, extra=1, mismatched=3)])
    samples = {
        (s.labels.get("category"), s.value)
        for family in text_string_to_metric_families(textfile.read_text())
        for s in family.samples
        if s.name == "d1cdc_verify_differences"
    }
    assert samples == {("missing", 2.0), ("extra", 1.0), ("mismatched", 3.0)}

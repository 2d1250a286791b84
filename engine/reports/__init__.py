"""Segment reports (issue 9): the contract in engine.reports.base, re-exported here."""

from engine.reports.base import (
    REPORT_NAMES,
    Chart,
    Column,
    Filters,
    ReportDefinition,
    ReportResult,
    Series,
    available_reports,
    filter_options,
    parse_filters,
    register_campaign_options,
    register_report,
    report_definition,
    run_report,
    to_csv,
)

__all__ = [
    "REPORT_NAMES",
    "Chart",
    "Column",
    "Filters",
    "ReportDefinition",
    "ReportResult",
    "Series",
    "available_reports",
    "filter_options",
    "parse_filters",
    "register_campaign_options",
    "register_report",
    "report_definition",
    "run_report",
    "to_csv",
]

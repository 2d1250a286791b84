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
    report_to_dict,
    run_report,
    to_csv,
)
from engine.reports.models import PlanPageView, record_plan_opened

__all__ = [
    "REPORT_NAMES",
    "Chart",
    "Column",
    "Filters",
    "PlanPageView",
    "ReportDefinition",
    "ReportResult",
    "Series",
    "available_reports",
    "filter_options",
    "parse_filters",
    "record_plan_opened",
    "register_campaign_options",
    "register_report",
    "report_to_dict",
    "report_definition",
    "run_report",
    "to_csv",
]

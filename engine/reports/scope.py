"""The SQL every report shares: which accounts the filters keep, and the grouping column."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import ColumnElement, Select, func, literal
from sqlalchemy.orm import InstrumentedAttribute

from engine.accounts import Account
from engine.reports.base import Filters, campaign_accounts, campaign_scope

ALL = "all"
NONE_LABEL = "(none)"


def trait_text(name: str) -> ColumnElement[Any]:
    text: ColumnElement[Any] = Account.traits[name].as_string()
    return text


def account_conditions(filters: Filters) -> list[ColumnElement[bool]]:
    """Conditions on Account (join it first) for the segment, stage, trait and campaign filters."""
    conditions: list[ColumnElement[bool]] = []
    if filters.segment:
        conditions.append(Account.segment == filters.segment)
    if filters.stage:
        conditions.append(Account.lifecycle_stage == filters.stage)
    for name, value in filters.traits:
        conditions.append(trait_text(name) == value)
    if filters.campaign:
        conditions.append(campaign_scope(filters.campaign))
    return conditions


def group_column(
    filters: Filters, *, channel: ColumnElement[Any] | InstrumentedAttribute[Any] | None = None
) -> ColumnElement[Any]:
    """What rows are grouped by: a constant 'all' when there is no grouping."""
    group = filters.group_by
    if group == "segment":
        return Account.segment.expression
    if group == "stage":
        return Account.lifecycle_stage.expression
    if group == "channel" and channel is not None:
        return channel.expression if isinstance(channel, InstrumentedAttribute) else channel
    if group and group.startswith("trait."):
        return func.coalesce(trait_text(group.removeprefix("trait.")), NONE_LABEL)
    return literal(ALL)


def scope_accounts(query: Select[Any], filters: Filters, account_id: Any) -> Select[Any]:
    """Apply the account filters to rows carrying `account_id`. The campaign filter is a list of
    account ids, applied to the column itself; Account is joined only when a segment, stage, trait
    or grouping reads it (an unfiltered report then never touches the million-row accounts table)."""
    if filters.campaign:
        query = query.where(account_id.in_(campaign_accounts(filters.campaign)))
    if not reads_accounts(filters):
        return query
    without_campaign = dataclasses.replace(filters, campaign=None)
    return query.join(Account, Account.id == account_id).where(*account_conditions(without_campaign))


def reads_accounts(filters: Filters) -> bool:
    """A segment, stage or trait filter, or a grouping other than channel, reads the accounts."""
    return bool(
        filters.segment
        or filters.stage
        or filters.traits
        or (filters.group_by and filters.group_by != "channel")
    )


def needs_account_join(filters: Filters) -> bool:
    return bool(
        filters.segment
        or filters.stage
        or filters.traits
        or filters.campaign
        or (filters.group_by and filters.group_by != "channel")
    )


# --- the same on summary rows, which carry the account's segment, stage and traits ---------------


def snapshot_conditions(filters: Filters, table: Any) -> list[ColumnElement[bool]]:
    """The account filters on a summary table's snapshot columns (segment, stage, traits,
    account_id): no join with the accounts table."""
    conditions: list[ColumnElement[bool]] = []
    if filters.segment:
        conditions.append(table.segment == filters.segment)
    if filters.stage:
        conditions.append(table.stage == filters.stage)
    for name, value in filters.traits:
        conditions.append(table.traits[name].as_string() == value)
    if filters.campaign:
        conditions.append(table.account_id.in_(campaign_accounts(filters.campaign)))
    return conditions


def snapshot_group(filters: Filters, table: Any) -> ColumnElement[Any]:
    """group_column on a summary table's snapshot columns ('all' when not grouped)."""
    group = filters.group_by
    if group == "segment":
        column: ColumnElement[Any] = table.segment
        return column
    if group == "stage":
        column = table.stage
        return column
    if group and group.startswith("trait."):
        return func.coalesce(table.traits[group.removeprefix("trait.")].as_string(), NONE_LABEL)
    return literal(ALL)

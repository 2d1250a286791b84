"""`northstar` commands for content (registered by web.cli)."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Attach this area's commands to the `northstar` group."""

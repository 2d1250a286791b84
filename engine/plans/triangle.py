"""The seed's relationship triangle (1 executive sponsor, 2 champions, 3 power users) and its gaps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.accounts import Contact, ContactRole

WANTED = {ContactRole.EXEC_SPONSOR: 1, ContactRole.CHAMPION: 2, ContactRole.POWER_USER: 3}  # seed 004's 1-2-3
ROLE_NAMES = {
    ContactRole.EXEC_SPONSOR: ("executive sponsor", "executive sponsors"),
    ContactRole.CHAMPION: ("champion", "champions"),
    ContactRole.POWER_USER: ("power user", "power users"),
}


@dataclass(frozen=True)
class Triangle:
    """The seed's relationship triangle: 1 executive sponsor, 2 champions, 3 power users."""

    exec_sponsors: list[Contact]
    champions: list[Contact]
    power_users: list[Contact]
    gaps: list[str]

    def to_dict(self) -> dict[str, Any]:
        def people(contacts: list[Contact]) -> list[dict[str, str]]:
            return [{"name": c.name, "email": c.email} for c in contacts]

        return {
            "exec_sponsor": people(self.exec_sponsors),
            "champions": people(self.champions),
            "power_users": people(self.power_users),
            "gaps": list(self.gaps),
        }


def triangle(contacts: Sequence[Contact]) -> Triangle:
    by_role: dict[ContactRole, list[Contact]] = {role: [] for role in WANTED}
    for contact in contacts:
        if contact.role in by_role:
            by_role[contact.role].append(contact)
    gaps = []
    for role, wanted in WANTED.items():
        have = len(by_role[role])
        one, many = ROLE_NAMES[role]
        if have == 0:
            gaps.append(f"no {one}")
        elif have < wanted:
            gaps.append(f"{have} of {wanted} {many}")
    return Triangle(
        by_role[ContactRole.EXEC_SPONSOR],
        by_role[ContactRole.CHAMPION],
        by_role[ContactRole.POWER_USER],
        gaps,
    )

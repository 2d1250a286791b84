"""Playbooks: one YAML file holding a workspace's library, rules, plans, surveys, content, campaigns.

Each package owns its sections and registers them here; `import_playbook` validates every section
first (reporting each bad key by path) and then loads them in one transaction, idempotently.
"""

from engine.playbook.loader import (
    PlaybookInvalid,
    Section,
    export_playbook,
    import_playbook,
    read_playbook,
    register_section,
    resolve_playbook,
)

__all__ = [
    "PlaybookInvalid",
    "Section",
    "export_playbook",
    "import_playbook",
    "read_playbook",
    "register_section",
    "resolve_playbook",
]

"""Reading, validating and importing playbook files."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from marshmallow import Schema
from marshmallow import ValidationError as SchemaError
from sqlalchemy.orm import Session

from engine.errors import ValidationFailed


class PlaybookInvalid(ValidationFailed):
    """A playbook that cannot be imported; `errors` maps a key path (rules[2].condition) to why."""


@dataclass(frozen=True)
class Section:
    """A top-level list in the playbook, validated by `schema` and loaded by `load`."""

    name: str
    order: int
    schema: Callable[[], Schema]
    load: Callable[[Session, list[dict[str, Any]]], int]
    # What is stored, as the items `load` takes (for export; loading them back changes nothing).
    dump: Callable[[Session], list[dict[str, Any]]] | None = None


_sections: dict[str, Section] = {}
TOP_LEVEL_KEYS = {"name", "title", "description", "version"}
BUNDLED_NAME = re.compile(r"[a-z][a-z0-9_\-]{0,79}")


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (YAML would keep the last silently,
    and a playbook's second `outcomes:` would drop the first without a word)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: SafeLoader's own error says so
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears twice", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def register_section(section: Section) -> None:
    _sections[section.name] = section


def sections() -> list[Section]:
    return sorted(_sections.values(), key=lambda s: s.order)


def resolve_playbook(name_or_path: str) -> tuple[str, str]:
    """Return (label, YAML text) for a bundled playbook name or a file path."""
    path = Path(name_or_path)
    try:
        is_file = path.suffix in (".yaml", ".yml") or path.exists()
    except OSError:  # a name the file system refuses (too long): not a file
        is_file = False
    if is_file:
        try:
            return str(path), path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise PlaybookInvalid({"file": f"{path} is not UTF-8 text; save it as UTF-8"}) from None
        except OSError as exc:
            raise PlaybookInvalid({"file": f"cannot read {path}: {exc.strerror}"}) from exc
    if not BUNDLED_NAME.fullmatch(name_or_path):
        raise PlaybookInvalid(
            {"playbook": f"no file {name_or_path[:200]!r} and no bundled playbook of that name"}
        )
    bundled = resources.files("engine.playbook") / "bundled" / f"{name_or_path}.yaml"
    if not bundled.is_file():
        names = sorted(
            p.name.removesuffix(".yaml")
            for p in (resources.files("engine.playbook") / "bundled").iterdir()
            if p.name.endswith(".yaml")
        )
        raise PlaybookInvalid(
            {
                "playbook": f"no file {name_or_path!r} and no bundled playbook of that name "
                f"(bundled: {', '.join(names)})"
            }
        )
    return f"bundled:{name_or_path}", bundled.read_text(encoding="utf-8")


def read_playbook(text: str) -> dict[str, list[dict[str, Any]]]:
    """Parse and validate every section; raise PlaybookInvalid listing every bad key path."""
    try:
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "file"
        raise PlaybookInvalid({where: f"not valid YAML: {getattr(exc, 'problem', exc)}"}) from exc
    except RecursionError:
        raise PlaybookInvalid({"file": "nested too deeply to be a playbook"}) from None
    if not isinstance(document, dict):
        raise PlaybookInvalid({"(top)": "a playbook is a mapping of sections"})
    if nul := _nul_path(document, ""):
        raise PlaybookInvalid({nul: "contains a NUL character"})
    known = {s.name: s for s in sections()}
    errors: dict[str, Any] = {}
    loaded: dict[str, list[dict[str, Any]]] = {}
    for key, value in document.items():
        if key in TOP_LEVEL_KEYS:
            continue
        section = known.get(key)
        if section is None:
            errors[str(key)] = f"unknown section (known: {', '.join(sorted(known))})"
            continue
        if not isinstance(value, list):
            errors[key] = "must be a list"
            continue
        try:
            loaded[key] = section.schema().load(value, many=True)
        except SchemaError as exc:
            errors.update(flatten_errors(exc.messages, key))
        except RecursionError:
            errors[key] = "nested too deeply"
    if errors:
        raise PlaybookInvalid(errors)
    return loaded


def _nul_path(value: Any, path: str) -> str | None:
    """The key path of the first string (or key) holding a NUL character, which PostgreSQL refuses."""
    if isinstance(value, str):
        return (path or "(top)") if "\x00" in value else None
    if isinstance(value, dict):
        for key, inner in value.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and "\x00" in key:
                return child
            if found := _nul_path(inner, child):
                return found
    if isinstance(value, list):
        for i, inner in enumerate(value):
            if found := _nul_path(inner, f"{path}[{i}]"):
                return found
    return None


def import_playbook(session: Session, text: str) -> dict[str, int]:
    """Validate then load every section in order; the caller's transaction makes it all-or-nothing."""
    loaded = read_playbook(text)
    counts: dict[str, int] = {}
    for section in sections():
        if section.name in loaded:
            try:
                counts[section.name] = section.load(session, loaded[section.name])
            except ValidationFailed as exc:
                raise PlaybookInvalid({_prefixed(section.name, k): v for k, v in exc.errors.items()}) from exc
            session.flush()
    return counts


def export_playbook(
    session: Session, *, name: str = "exported", title: str = "", description: str = ""
) -> str:
    """Every section as YAML that `import_playbook` takes back exactly: importing it into another
    workspace and exporting again gives the same text."""
    document: dict[str, Any] = {"name": name}
    if title:
        document["title"] = title
    if description:
        document["description"] = description
    for section in sections():
        if section.dump is None:
            continue
        items = section.dump(session)
        if items:
            # Normalised through the section's schema, then stripped of unset (None / empty) values.
            document[section.name] = [_compact(item) for item in section.schema().load(items, many=True)]
    header = "# Northstar playbook, exported; `northstar playbook import FILE` loads it.\n"
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def _compact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items() if v is not None and v != []}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


def _prefixed(section: str, key: str) -> str:
    return key if key.startswith(section) else f"{section}{key if key.startswith('[') else '.' + key}"


def flatten_errors(messages: Any, path: str) -> dict[str, str]:
    """marshmallow's nested {0: {"steps": {1: {...}}}} → {"campaigns[0].steps[1].kind": "..."}."""
    flat: dict[str, str] = {}
    if isinstance(messages, Mapping):
        for key, inner in messages.items():
            if isinstance(key, int):
                child = f"{path}[{key}]"
            elif key == "_schema":
                child = path
            else:
                child = f"{path}.{key}" if path else str(key)
            flat.update(flatten_errors(inner, child))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        flat[path] = " ".join(messages)
    elif isinstance(messages, list):
        for i, inner in enumerate(messages):
            flat.update(flatten_errors(inner, f"{path}[{i}]"))
    else:
        flat[path] = str(messages)
    return flat

"""The platform's module types, read from ``config/module_types.yaml`` (SPEC §7).

The file is configuration like every setting: ``service.settings`` reads it at
start-up, and a bad file stops the process with one line naming the file and the
entry. A type is never deleted, only ``retired`` (refused in new results, still
reported), so every type a stored result names stays known.

One catalogue serves a process: the request schemas and the OpenAPI enum are
declared once at import, so ``create_app`` installs its settings' catalogue here
and they read it from :func:`current`.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path
from typing import Any

import yaml

DEFAULT_FILE = Path(__file__).resolve().parent.parent / "config" / "module_types.yaml"

_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")
_KEYS = frozenset({"id", "name", "points", "retired"})
# Each type is four fields of every cached aggregate's breakdown, read at once: keep the read bounded.
MAX_TYPES = 100


class ModuleTypesError(ValueError):
    """The module types file cannot be used; the message is one line naming the file and entry."""


@dataclasses.dataclass(frozen=True, slots=True)
class ModuleType:
    id: str
    name: str
    points: int
    retired: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class ModuleTypes:
    """The types in the file's order; ``ids`` every id, sorted (the order breakdowns are reported in),
    and ``active_ids`` those new results may name. Computed once: every module result is checked
    against them."""

    types: tuple[ModuleType, ...]
    ids: tuple[str, ...] = dataclasses.field(init=False)
    active_ids: tuple[str, ...] = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", tuple(sorted(kind.id for kind in self.types)))
        object.__setattr__(self, "active_ids", tuple(sorted(kind.id for kind in self.types if not kind.retired)))


def _entry(path: Path, index: int, raw: object) -> ModuleType:
    where = f"{path}: entry {index + 1}"
    if not isinstance(raw, dict):
        raise ModuleTypesError(f"{where}: must be a mapping of id, name, points (and retired)")
    if isinstance(raw.get("id"), str):
        where += f" ({raw['id']})"
    unknown = sorted(str(key) for key in set(raw) - _KEYS)
    if unknown:
        raise ModuleTypesError(f"{where}: unknown key(s) {', '.join(unknown)}")
    absent = [key for key in ("id", "name", "points") if key not in raw]
    if absent:
        raise ModuleTypesError(f"{where}: missing {', '.join(absent)}")
    problem = _problem(raw)
    if problem:
        raise ModuleTypesError(f"{where}: {problem}")
    return ModuleType(raw["id"], raw["name"], raw["points"], raw.get("retired", False))


def _problem(raw: dict[Any, Any]) -> str | None:
    kind_id, name, points, retired = raw["id"], raw["name"], raw["points"], raw.get("retired", False)
    if not isinstance(kind_id, str) or not _ID.fullmatch(kind_id):
        return f"id must be 1-40 of a-z, 0-9 and '-' (not at either end), got {kind_id!r}"
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        return "name must be text of 1-100 characters"
    if isinstance(points, bool) or not isinstance(points, int) or not 0 <= points <= 1_000_000:
        return f"points must be a whole number from 0 to 1000000, got {points!r}"
    if not isinstance(retired, bool):
        return f"retired must be true or false, got {retired!r}"
    return None


def load(path: Path = DEFAULT_FILE) -> ModuleTypes:
    """The file's module types, validated."""
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModuleTypesError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ModuleTypesError(f"{path}: not valid YAML{at}") from exc
    if not isinstance(raw, list) or not raw:
        raise ModuleTypesError(f"{path}: must be a non-empty list of module types")
    if len(raw) > MAX_TYPES:
        raise ModuleTypesError(f"{path}: at most {MAX_TYPES} module types, got {len(raw)}")
    types = tuple(_entry(path, index, entry) for index, entry in enumerate(raw))
    seen: set[str] = set()
    for index, kind in enumerate(types):
        if kind.id in seen:
            raise ModuleTypesError(f"{path}: entry {index + 1} ({kind.id}): duplicate id")
        seen.add(kind.id)
    return ModuleTypes(types)


@functools.cache
def load_default() -> ModuleTypes:
    """The shipped file's types, read once (for settings built without ``load_settings``)."""
    return load(DEFAULT_FILE)


_current: ModuleTypes | None = None


def install(types: ModuleTypes) -> None:
    """Make ``types`` the process's catalogue (``create_app`` does, from its settings)."""
    global _current  # noqa: PLW0603 - one catalogue per process, see the module docstring
    _current = types


def current() -> ModuleTypes:
    """The installed catalogue; the default file's until an application installs its own."""
    return _current if _current is not None else load_default()

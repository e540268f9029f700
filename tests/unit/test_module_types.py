"""``config/module_types.yaml``: the shipped file, and every malformed one refused at start-up
with one line naming the file and the entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from service import module_types
from service.module_types import ModuleTypesError
from service.settings import ConfigError, load_settings
from tests.unit.test_settings import refused_start


def test_the_shipped_file_lists_fifteen_types_with_points() -> None:
    shipped = module_types.load()
    assert len(shipped.types) == 15
    assert len(set(shipped.ids)) == 15
    assert all(kind.points >= 0 and kind.name for kind in shipped.types)
    assert shipped.active_ids == shipped.ids


def test_a_retired_type_is_known_but_not_active(tmp_path: Path) -> None:
    path = tmp_path / "types.yaml"
    path.write_text("- {id: quiz, name: Quiz, points: 2}\n- {id: fax, name: Fax, points: 1, retired: true}\n")
    loaded = module_types.load(path)
    assert (loaded.ids, loaded.active_ids) == (("fax", "quiz"), ("quiz",))


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("- {id: quiz, name: Quiz, points: 1}\n- {id: quiz, name: Again, points: 2}\n", "entry 2 (quiz): duplicate id"),
        ("- {id: Quiz, name: Quiz, points: 1}\n", "entry 1 (Quiz): id must be"),
        ("- {id: -quiz, name: Quiz, points: 1}\n", "entry 1 (-quiz): id must be"),
        ("- {id: 7, name: Quiz, points: 1}\n", "entry 1: id must be"),
        ("- {id: quiz, name: Quiz}\n", "entry 1 (quiz): missing points"),
        ("- {id: quiz, points: 1}\n", "entry 1 (quiz): missing name"),
        ("- {id: quiz, name: Quiz, points: 1, colour: red}\n", "entry 1 (quiz): unknown key(s) colour"),
        ("- {id: quiz, name: Quiz, points: -1}\n", "entry 1 (quiz): points must be"),
        ("- {id: quiz, name: Quiz, points: 1.5}\n", "entry 1 (quiz): points must be"),
        ("- {id: quiz, name: Quiz, points: true}\n", "entry 1 (quiz): points must be"),
        ("- {id: quiz, name: '', points: 1}\n", "entry 1 (quiz): name must be"),
        ("- {id: quiz, name: Quiz, points: 1, retired: maybe}\n", "entry 1 (quiz): retired must be"),
        ("- quiz\n", "entry 1: must be a mapping"),
        ("types: [quiz]\n", "must be a non-empty list"),
        ("[]\n", "must be a non-empty list"),
        ("- {id: quiz, name: [Quiz\n", "not valid YAML at line"),
    ],
)
def test_a_malformed_file_is_one_line_naming_the_file_and_entry(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "types.yaml"
    path.write_text(text)
    with pytest.raises(ModuleTypesError) as refused:
        module_types.load(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: ")
    assert says in message
    assert "\n" not in message


def test_too_many_types_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "types.yaml"
    path.write_text("".join(f"- {{id: t{n}, name: T, points: 1}}\n" for n in range(module_types.MAX_TYPES + 1)))
    with pytest.raises(ModuleTypesError, match="at most 100"):
        module_types.load(path)


def test_settings_read_the_file_the_environment_names(tmp_path: Path) -> None:
    path = tmp_path / "types.yaml"
    path.write_text("- {id: quiz, name: Quiz, points: 3}\n")
    settings = load_settings({"STATS_ENV": "test", "STATS_MODULE_TYPES_FILE": str(path)})
    assert settings.module_types.ids == ("quiz",)
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings({"STATS_ENV": "test", "STATS_MODULE_TYPES_FILE": str(tmp_path / "absent.yaml")})


def test_the_process_stops_with_one_line_on_a_malformed_file(tmp_path: Path) -> None:
    path = tmp_path / "types.yaml"
    path.write_text("- {id: quiz, name: Quiz, points: 1}\n- {id: quiz, name: Quiz again, points: 1}\n")
    assert f"{path}: entry 2 (quiz): duplicate id" in refused_start(STATS_MODULE_TYPES_FILE=str(path))

"""Scalar answer values: multi-level menus, checkboxes and dates, as SamaHub writes them.

SamaHub writes every scalar as a string: a menu's levels joined by `|` (`"color|multiple
colors"`, sometimes with spaces around the bar), checkboxes as an object of every option to
`"1"` (checked) or `"0"`, a date as `YYYY-MM-DD`. These read and write them; the same rules
apply to the tags inside shapes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

__all__ = [
    "checkbox_value",
    "checked_options",
    "is_checkboxes",
    "join_menu",
    "menu_levels",
    "read_date",
]


def menu_levels(value: str) -> list[str]:
    """Split a multi-level menu value into its levels: `"house | bed room"` -> `["house", "bed room"]`.

    Spaces around each level are stripped (one of SamaHub's examples has them); the raw value
    stays in the answers until you set a new one.
    """
    if not isinstance(value, str):
        raise TypeError(f"a menu value is a string such as 'a|b', got {type(value).__name__}")
    return [level.strip() for level in value.split("|")]


def join_menu(levels: Iterable[str]) -> str:
    """Join menu levels the way SamaHub writes them: `["a", "b"]` -> `"a|b"`."""
    parts = list(levels)
    for level in parts:
        if not isinstance(level, str) or "|" in level:
            raise ValueError(f"a menu level is a string without '|', got {level!r}")
    return "|".join(parts)


def is_checkboxes(value: Any) -> bool:
    """Say whether a value looks like checkboxes: a non-empty object of options to "0"/"1"."""
    return (
        isinstance(value, dict)
        and bool(value)
        and all(flag in ("0", "1") for flag in value.values())
    )


def checked_options(value: Mapping[str, Any]) -> set[str]:
    """The options whose value is `"1"` (checked)."""
    if not isinstance(value, Mapping):
        raise TypeError(
            f'checkboxes are an object of options to "0"/"1", got {type(value).__name__}'
        )
    return {option for option, flag in value.items() if flag == "1"}


def checkbox_value(
    options: Iterable[str], checked: Iterable[str], *, current: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """Build checkboxes with every option: `"1"` for the checked ones, `"0"` for the rest.

    With `current`, its options keep their order and options of `checked` it lacks are added.
    """
    wanted = set(checked)
    names = list(current or {}) + [o for o in options if o not in (current or {})]
    names += sorted(wanted - set(names))
    return {name: "1" if name in wanted else "0" for name in names}


def read_date(value: str) -> date:
    """Read a date answer (`"2031-04-09"`)."""
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"a date answer is YYYY-MM-DD, got {value!r}") from None

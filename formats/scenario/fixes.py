"""Fixes named on the command line: `--fix NAME` / `--no-fix NAME` on top of a profile.

A fix is either one of the client's ten switches (`system.client.config.FIX_NAMES`, set in
`fleet.profile` `enable`/`disable`) or a server trait (`system.server.config.LEGACY_TRAITS`, the
legacy behaviour the fix removes, set in `system.behaviour` `fixed`/`legacy`). They are applied to
the raw scenario document as overrides (`fix`, `no_fix`, and `fixes` = `a+b`), after `profile`, so
`sweep --vary fix=a,b` walks them like any other field and a bad name is refused before a run.
"""
from __future__ import annotations

import difflib
from typing import Any, Iterable, Mapping

from system.client.config import FIX_NAMES
from system.errors import UsageError
from system.server.config import LEGACY_TRAITS

#: override keys that name fixes; applied after every other override (after `profile`)
FIX_KEYS = ("fix", "fixes", "no_fix")


def known_fixes() -> tuple[str, ...]:
    return tuple(FIX_NAMES) + tuple(LEGACY_TRAITS)


def check_fix(name: str, flag: str = "--fix") -> str:
    if name in known_fixes():
        return name
    close = difflib.get_close_matches(name, known_fixes(), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UsageError(f"{flag} {name!r}: not a fix{hint}; client fixes: {', '.join(FIX_NAMES)}; "
                     f"server fixes (the legacy trait each removes): {', '.join(LEGACY_TRAITS)}")


def names(value: Any) -> list[str]:
    """A fix override's value as a list: one name, `a+b`, a list, or nothing (`none`, empty)."""
    if value is None:
        return []
    items: Iterable[Any] = value if isinstance(value, (list, tuple)) else str(value).split("+")
    return [str(v).strip() for v in items if str(v).strip() and str(v).strip() != "none"]


def apply_fixes(doc: dict, enable: Iterable[str], disable: Iterable[str]) -> None:
    """Turn fixes on (`enable`) and off (`disable`) in a raw scenario document, in place."""
    for name, on in [*((n, True) for n in enable), *((n, False) for n in disable)]:
        check_fix(name, "--fix" if on else "--no-fix")
        if name in FIX_NAMES:
            _switch(doc.setdefault("fleet", {}), "profile", ("enable", "disable"), name, on)
        else:  # a server fix is its legacy trait turned off
            _switch(doc.setdefault("system", {}), "behaviour", ("fixed", "legacy"), name, on)


def _switch(parent: dict, key: str, sides: tuple[str, str], name: str, on: bool) -> None:
    spec = parent.get(key, "fixed")
    spec = {"base": spec} if isinstance(spec, str) else dict(spec)
    add, remove = sides if on else sides[::-1]
    spec[remove] = [n for n in spec.get(remove, []) if n != name]
    if name not in spec.get(add, []):
        spec[add] = [*spec.get(add, []), name]
    parent[key] = {k: v for k, v in spec.items() if v != []}


def fix_overrides(overrides: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(enable, disable) named by the `fix`/`fixes`/`no_fix` overrides."""
    return (names(overrides.get("fix")) + names(overrides.get("fixes")), names(overrides.get("no_fix")))


def profile_label(document: Mapping[str, Any]) -> str:
    """The system a (resolved) scenario document runs, named by its base and its fixes:
    `legacy`, `fixed`, `legacy+refresh_before_reconnect`, `fixed-jitter`."""
    fleet = (document.get("fleet") or {}).get("profile", "fixed")
    system = (document.get("system") or {}).get("behaviour", "fixed")
    fleet = {"base": fleet} if isinstance(fleet, str) else fleet
    system = {"base": system} if isinstance(system, str) else system
    base = str(fleet.get("base", "fixed"))
    label = base if str(system.get("base", "fixed")) == base else f"{base} client, {system.get('base')} server"
    on = [*fleet.get("enable", []), *system.get("fixed", [])]
    off = [*fleet.get("disable", []), *system.get("legacy", [])]
    return label + "".join(f"+{n}" for n in on) + "".join(f"-{n}" for n in off)


def add_fix_flags(parser: Any) -> None:
    """`--fix NAME` / `--no-fix NAME`, repeatable, for every command that loads a scenario."""
    parser.add_argument("--fix", action="append", default=[], metavar="NAME",
                        help="turn one fix on over the profile (repeatable): a client fix "
                             f"({', '.join(FIX_NAMES)}) or a server one (the legacy trait it removes: "
                             f"{', '.join(LEGACY_TRAITS)})")
    parser.add_argument("--no-fix", action="append", default=[], metavar="NAME",
                        help="turn one fix off over the profile (repeatable); names as for --fix")


def flag_overrides(args: Any) -> dict[str, list[str] | None]:
    """The scenario overrides of `--fix` / `--no-fix` (None when not given)."""
    return {"fix": list(args.fix) or None, "no_fix": list(args.no_fix) or None}

"""Step and layer specs: the strings users type to pick denoising steps or DiT blocks.

Grammar (ARCHITECTURE §2), identical for steps and layers::

    spec  := "all" | item ( sep item )*
    item  := int | int "-" int          (inclusive range, e.g. "0-19")
    int   := -?[0-9]+                   (negative counts from the end: -1 is the last)
    sep   := "," and/or whitespace

The official tools' ``--vis_steps`` strings ("all", "0-19,45-49") and ``--layers`` lists
("0 10 20 30 39") parse verbatim. The result is a sorted list of unique indices in [0, count).
"""
from __future__ import annotations

import re

_SEP = re.compile(r"[,\s]+")
_ITEM = re.compile(r"^(-?\d+)(?:-(-?\d+))?$")


class SpecError(ValueError):
    """A step/layer spec that cannot be parsed or lies outside the valid range."""


def _show(token: str, limit: int = 40) -> str:
    """A token as quoted in messages, cut short so a pasted blob gives a short error."""
    return token if len(token) <= limit else f"{token[:limit]}… ({len(token)} characters)"


def _hint(name: str, count: int) -> str:
    last = count - 1
    return (f"valid {name} are 0..{last} (or -{count}..-1 counted from the end); "
            f"write 'all', a list like '0,{min(10, last)}' or ranges like '0-{min(19, last)}'")


def check_index(value: int, count: int, name: str) -> int:
    """``value`` if it picks one of ``count`` items (0..count-1), e.g. a batch item.

    Raises:
        SpecError: naming ``name`` and the valid range, if it does not.
    """
    if not 0 <= value < count:
        raise SpecError(f"{name}: {value} is outside 0..{count - 1}")
    return value


def parse_spec(spec: str, count: int, name: str = "steps") -> list[int]:
    """Parse a step or layer spec into sorted unique indices.

    Args:
        spec: the user's string, e.g. ``"all"``, ``"0-19,45-49"``, ``"0 10 20 30 39"``, ``"-1"``.
        count: how many steps (S) or layers exist; valid indices are 0..count-1.
        name: what is being picked, used in error messages ("steps", "layers", "frames").

    Returns:
        Sorted list of unique ints in [0, count).

    Raises:
        SpecError: empty spec, a token that is not an int or range, an index outside
            [-count, count), a backwards range, or ``count < 1``. The message names the bad
            token and the valid range.
    """
    if count < 1:
        raise SpecError(f"{name}: there is nothing to pick from (count is {count})")
    text = (spec or "").strip()
    if not text:
        raise SpecError(f"{name}: the spec is empty; {_hint(name, count)}")
    if text.lower() == "all":
        return list(range(count))

    def resolve(token: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:  # more digits than int() accepts (sys.get_int_max_str_digits)
            value = count
        if not -count <= value < count:
            raise SpecError(f"{name}: '{_show(token)}' is out of range; {_hint(name, count)}")
        return value % count

    picked: set[int] = set()
    for token in _SEP.split(text):
        if not token:
            continue
        match = _ITEM.match(token)
        if not match:
            raise SpecError(f"{name}: cannot read '{_show(token)}'; {_hint(name, count)}")
        start = resolve(token, match.group(1))
        stop = resolve(token, match.group(2)) if match.group(2) is not None else start
        if stop < start:
            raise SpecError(f"{name}: range '{_show(token)}' runs backwards; write it low-high")
        picked.update(range(start, stop + 1))
    if not picked:
        raise SpecError(f"{name}: the spec is empty; {_hint(name, count)}")
    return sorted(picked)


def spec_ranges(spec: str, name: str = "steps") -> list[tuple[int, int]] | None:
    """Check a spec's syntax without knowing the count; for validating before a run.

    Returns:
        None for "all", else the inclusive (start, stop) pairs as written (negatives unresolved).
        Nothing is expanded, so "0-999999999" costs nothing.

    Raises:
        SpecError: an empty spec, an unreadable token, or a backwards range of same-sign ends.
    """
    text = (spec or "").strip()
    if not text:
        raise SpecError(f"{name}: the spec is empty; write 'all', a list like '0,10,20' or ranges like '0-19'")
    if text.lower() == "all":
        return None
    pairs = []
    for token in _SEP.split(text):
        if not token:
            continue
        match = _ITEM.match(token)
        if not match:
            raise SpecError(f"{name}: cannot read '{_show(token)}'; write 'all', a list like '0,10,20' or ranges "
                            "like '0-19'")
        start = int(match.group(1)) if len(match.group(1)) < 20 else 10**19
        stop = start if match.group(2) is None else (int(match.group(2)) if len(match.group(2)) < 20 else 10**19)
        if (start < 0) == (stop < 0) and stop < start:
            raise SpecError(f"{name}: range '{_show(token)}' runs backwards; write it low-high")
        pairs.append((start, stop))
    if not pairs:
        raise SpecError(f"{name}: the spec is empty; write 'all', a list like '0,10,20' or ranges like '0-19'")
    return pairs


def format_spec(indices: list[int]) -> str:
    """Inverse of :func:`parse_spec` for display: ``[0,1,2,5]`` → ``"0-2,5"``."""
    parts: list[str] = []
    run: list[int] = []
    for i in sorted(set(indices)):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [i]
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(parts)

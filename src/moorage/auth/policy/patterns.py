"""IAM patterns: ``*``/``?`` wildcards, ARN patterns (wildcards do not cross ``:`` in the
first five parts) and policy variables (``${aws:username}``), compiled to regular expressions.

Used to validate documents (an ``ecr:`` action pattern must match a known action) and to match
``Action``, ``Resource`` and the ``String``/``Arn`` condition operators at evaluation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

__all__ = [
    "action_matches",
    "arn_matches",
    "arn_segments",
    "compile_pattern",
    "glob_regex",
    "substitute",
]

_Token = tuple[str, str]  # ("lit", char) | ("star", "") | ("one", "") | ("var", name)


def _tokens(pattern: str, variables: bool) -> list[_Token]:
    """Split a pattern into literal characters, ``*``, ``?`` and (when ``variables``)
    ``${name}`` references."""
    tokens: list[_Token] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if variables and pattern.startswith("${", index):
            end = pattern.find("}", index + 2)
            if end != -1:
                tokens.append(("var", pattern[index + 2 : end]))
                index = end + 1
                continue
        if char == "*":
            tokens.append(("star", ""))
        elif char == "?":
            tokens.append(("one", ""))
        else:
            tokens.append(("lit", char))
        index += 1
    return tokens


def arn_segments(pattern: str) -> list[str]:
    """The colon-separated parts of an ARN pattern (at most six; the last keeps its colons),
    ignoring colons inside ``${...}``."""
    segments = [""]
    depth = 0
    for index, char in enumerate(pattern):
        if pattern.startswith("${", index):
            depth += 1
        elif char == "}" and depth:
            depth -= 1
        if char == ":" and not depth and len(segments) < 6:
            segments.append("")
        else:
            segments[-1] += char
    return segments


_SPECIAL_VARIABLES = {"*": "*", "?": "?", "$": "$"}


def compile_pattern(
    pattern: str,
    *,
    ignore_case: bool,
    arn: bool,
    context: Mapping[str, tuple[str, ...]] | None,
) -> re.Pattern[str] | None:
    """Regex for an IAM pattern: ``*`` any run, ``?`` one character; with ``arn`` and a six-part
    pattern, wildcards in the first five parts do not cross ``:``. With ``context``, ``${key}``
    is replaced by the key's single value (literal); None when a variable has no single value."""
    tokens = _tokens(pattern, context is not None)
    segmented = arn and sum(1 for kind, value in tokens if kind == "lit" and value == ":") >= 5
    parts: list[str] = []
    segment = 0
    for kind, value in tokens:
        in_prefix = segmented and segment < 5
        if kind == "lit":
            parts.append(re.escape(value))
            if value == ":":
                segment += 1
        elif kind == "star":
            parts.append("[^:]*" if in_prefix else ".*")
        elif kind == "one":
            parts.append("[^:]" if in_prefix else ".")
        else:
            assert context is not None
            if value in _SPECIAL_VARIABLES:
                parts.append(re.escape(_SPECIAL_VARIABLES[value]))
                continue
            found = context.get(value.strip().lower())
            if not found or len(found) != 1:
                return None
            parts.append(re.escape(found[0]))
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile("".join(parts), flags)


@lru_cache(maxsize=4096)
def glob_regex(pattern: str, ignore_case: bool, arn: bool = False) -> re.Pattern[str]:
    """The compiled regex of a pattern without policy variables (cached)."""
    compiled = compile_pattern(pattern, ignore_case=ignore_case, arn=arn, context=None)
    assert compiled is not None
    return compiled


def action_matches(pattern: str, action: str) -> bool:
    """IAM action match: glob, case-insensitive (§5.1)."""
    return pattern == "*" or glob_regex(pattern, True).fullmatch(action) is not None


def arn_matches(
    pattern: str, arn: str, context: Mapping[str, tuple[str, ...]], variables: bool
) -> bool:
    """ARN match (Resource, ``ArnLike``): glob per ARN part, case-sensitive."""
    if pattern == "*":
        return True
    if variables and "${" in pattern:
        compiled = compile_pattern(pattern, ignore_case=False, arn=True, context=context)
    else:
        compiled = glob_regex(pattern, False, True)
    return compiled is not None and compiled.fullmatch(arn) is not None


def substitute(value: str, context: Mapping[str, tuple[str, ...]], variables: bool) -> str | None:
    """``value`` with ``${key}`` replaced (2012-10-17 only); None when a key has no single value."""
    if not variables or "${" not in value:
        return value
    missing = False

    def replace(match: re.Match[str]) -> str:
        nonlocal missing
        name = match.group(1)
        if name in _SPECIAL_VARIABLES:
            return _SPECIAL_VARIABLES[name]
        found = context.get(name.strip().lower())
        if not found or len(found) != 1:
            missing = True
            return ""
        return found[0]

    result = re.sub(r"\$\{([^}]*)\}", replace, value)
    return None if missing else result

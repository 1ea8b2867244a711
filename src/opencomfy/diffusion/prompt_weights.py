"""ComfyUI's prompt weighting syntax: ``(word)`` x1.1 per level, ``(word:1.3)`` sets the weight,
``\\(`` and ``\\)`` are literal brackets.

    >>> parse_weighted_prompt("a (red:1.5) cat")
    [('a ', 1.0), ('red', 1.5), (' cat', 1.0)]
"""

from __future__ import annotations

_ESCAPED_OPEN = "\0\2"
_ESCAPED_CLOSE = "\0\1"


def escape_brackets(text: str) -> str:
    """Hide ``\\(`` and ``\\)`` from the parser (restored by :func:`unescape_brackets`)."""
    return text.replace("\\)", _ESCAPED_CLOSE).replace("\\(", _ESCAPED_OPEN)


def unescape_brackets(text: str) -> str:
    return text.replace(_ESCAPED_CLOSE, ")").replace(_ESCAPED_OPEN, "(")


def split_top_level_groups(text: str) -> list[str]:
    """Cut ``text`` into plain runs and top-level ``(...)`` groups, keeping the brackets.

    An unclosed ``(`` runs to the end of the text as a plain run, as in ComfyUI.
    """
    parts: list[str] = []
    current = ""
    depth = 0
    for char in text:
        if char == "(":
            if depth == 0 and current:
                parts.append(current)
                current = ""
            current += char
            depth += 1
        elif char == ")" and depth > 0:
            depth -= 1
            current += char
            if depth == 0:
                parts.append(current)
                current = ""
        else:
            current += char
    if current:
        parts.append(current)
    return parts


def _weighted(text: str, weight: float) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for part in split_top_level_groups(text):
        if len(part) >= 2 and part[0] == "(" and part[-1] == ")":
            inner = part[1:-1]
            inner_weight = weight * 1.1
            colon = inner.rfind(":")
            if colon > 0:
                try:
                    inner_weight = float(inner[colon + 1:])
                    inner = inner[:colon]
                except ValueError:
                    pass
            out.extend(_weighted(inner, inner_weight))
        else:
            out.append((part, weight))
    return out


def parse_weighted_prompt(text: str) -> list[tuple[str, float]]:
    """Split a prompt into ``(text, weight)`` runs with ComfyUI's rules."""
    return [(unescape_brackets(part), weight) for part, weight in _weighted(escape_brackets(text), 1.0)]

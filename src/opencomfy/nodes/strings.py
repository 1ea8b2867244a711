"""String nodes of ComfyUI's ``comfy_extras/nodes_string.py`` (category ``utils/string``).

ComfyUI declares them with its V3 schema (see :mod:`opencomfy.nodes.v3_schema`). Regex nodes
take Python ``re`` syntax and the flags case-insensitive, multiline (``^``/``$`` per line) and
dotall (``.`` matches newlines).
"""

from __future__ import annotations

import re

from opencomfy.nodes.v3_schema import V3SchemaNode, node_entries

PYTHON_MODULE = "comfy_extras.nodes_string"

TEXT = ("STRING", {"multiline": True})


def _combo(options: list[str]):
    return ("COMBO", {"multiselect": False, "options": options})


def _flag(default: bool):
    return ("BOOLEAN", {"default": default})


def regex_flags(case_insensitive: bool, multiline: bool, dotall: bool) -> int:
    """The ``re`` flags the three boolean widgets stand for."""
    flags = 0
    if case_insensitive:
        flags |= re.IGNORECASE
    if multiline:
        flags |= re.MULTILINE
    if dotall:
        flags |= re.DOTALL
    return flags


class _StringNode(V3SchemaNode):
    CATEGORY = "utils/string"
    RETURN_TYPES = ("STRING",)
    RELATIVE_PYTHON_MODULE = PYTHON_MODULE


class StringConcatenate(_StringNode):
    """``string_a + delimiter + string_b``."""

    NODE_ID = "StringConcatenate"
    DISPLAY_NAME = "Concatenate"
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"string_a": TEXT, "string_b": TEXT,
                             "delimiter": ("STRING", {"default": "", "multiline": False})}}

    def execute(self, string_a, string_b, delimiter):
        return (delimiter.join((string_a, string_b)),)


class StringSubstring(_StringNode):
    """``string[start:end]`` (Python slicing: negative counts from the end)."""

    NODE_ID = "StringSubstring"
    DISPLAY_NAME = "Substring"
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"string": TEXT, "start": ("INT", {}), "end": ("INT", {})}}

    def execute(self, string, start, end):
        return (string[start:end],)


class StringLength(_StringNode):
    """Number of characters."""

    NODE_ID = "StringLength"
    DISPLAY_NAME = "Length"
    RETURN_TYPES = ("INT",)
    RETURN_NAMES = ("length",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"string": TEXT}}

    def execute(self, string):
        return (len(string),)


class CaseConverter(_StringNode):
    """UPPERCASE, lowercase, Capitalize (first letter) or Title Case."""

    NODE_ID = "CaseConverter"
    DISPLAY_NAME = "Case Converter"
    MODES = {"UPPERCASE": str.upper, "lowercase": str.lower, "Capitalize": str.capitalize,
             "Title Case": str.title}

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"string": TEXT, "mode": _combo(list(cls.MODES))}}

    def execute(self, string, mode):
        convert = self.MODES.get(mode)
        return (convert(string) if convert else string,)


class StringTrim(_StringNode):
    """Strip whitespace from both ends, the left or the right."""

    NODE_ID = "StringTrim"
    DISPLAY_NAME = "Trim"
    MODES = {"Both": str.strip, "Left": str.lstrip, "Right": str.rstrip}

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"string": TEXT, "mode": _combo(list(cls.MODES))}}

    def execute(self, string, mode):
        trim = self.MODES.get(mode)
        return (trim(string) if trim else string,)


class StringReplace(_StringNode):
    """Replace every occurrence of ``find`` (plain text) with ``replace``."""

    NODE_ID = "StringReplace"
    DISPLAY_NAME = "Replace"
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"string": TEXT, "find": TEXT, "replace": TEXT}}

    def execute(self, string, find, replace):
        return (string.replace(find, replace),)


class StringContains(_StringNode):
    """Whether ``substring`` occurs in ``string``."""

    NODE_ID = "StringContains"
    DISPLAY_NAME = "Contains"
    RETURN_TYPES = ("BOOLEAN",)
    RETURN_NAMES = ("contains",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"string": TEXT, "substring": TEXT, "case_sensitive": _flag(True)}}

    def execute(self, string, substring, case_sensitive):
        if not case_sensitive:
            string, substring = string.lower(), substring.lower()
        return (substring in string,)


class StringCompare(_StringNode):
    """Whether ``string_a`` starts with, ends with, or equals ``string_b``."""

    NODE_ID = "StringCompare"
    DISPLAY_NAME = "Compare"
    RETURN_TYPES = ("BOOLEAN",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "string_a": TEXT,
            "string_b": TEXT,
            "mode": _combo(["Starts With", "Ends With", "Equal"]),
            "case_sensitive": _flag(True),
        }}

    def execute(self, string_a, string_b, mode, case_sensitive):
        if not case_sensitive:
            string_a, string_b = string_a.lower(), string_b.lower()
        if mode == "Equal":
            return (string_a == string_b,)
        if mode == "Starts With":
            return (string_a.startswith(string_b),)
        if mode == "Ends With":
            return (string_a.endswith(string_b),)
        # ComfyUI returns no value here; an explicit error is clearer than a missing output.
        raise ValueError(f"Unknown compare mode: {mode}")


class RegexMatch(_StringNode):
    """Whether the pattern matches anywhere; an invalid pattern counts as no match."""

    NODE_ID = "RegexMatch"
    DISPLAY_NAME = "Regex Match"
    RETURN_TYPES = ("BOOLEAN",)
    RETURN_NAMES = ("matches",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"string": TEXT, "regex_pattern": TEXT,
                             "case_insensitive": _flag(True), "multiline": _flag(False),
                             "dotall": _flag(False)}}

    def execute(self, string, regex_pattern, case_insensitive, multiline, dotall):
        try:
            flags = regex_flags(case_insensitive, multiline, dotall)
            return (re.search(regex_pattern, string, flags) is not None,)
        except re.error:
            return (False,)


class RegexExtract(_StringNode):
    """The first match, all matches, the first match's group, or that group of every match.

    Several results are joined with newlines; nothing found (or an invalid pattern) gives "".
    """

    NODE_ID = "RegexExtract"
    DISPLAY_NAME = "Regex Extract"
    MODES = ["First Match", "All Matches", "First Group", "All Groups"]

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "string": TEXT,
            "regex_pattern": TEXT,
            "mode": _combo(list(cls.MODES)),
            "case_insensitive": _flag(True),
            "multiline": _flag(False),
            "dotall": _flag(False),
            "group_index": ("INT", {"default": 1, "min": 0, "max": 100}),
        }}

    def execute(self, string, regex_pattern, mode, case_insensitive, multiline, dotall,
                group_index):
        flags = regex_flags(case_insensitive, multiline, dotall)
        try:
            return (_extract(string, regex_pattern, mode, flags, group_index),)
        except re.error:
            return ("",)


def _extract(string: str, pattern: str, mode: str, flags: int, group_index: int) -> str:
    if mode == "First Match":
        match = re.search(pattern, string, flags)
        return match.group(0) if match else ""
    if mode == "All Matches":
        matches = re.findall(pattern, string, flags)
        # With groups, findall yields group tuples; ComfyUI keeps each tuple's first group.
        if matches and isinstance(matches[0], tuple):
            matches = [groups[0] for groups in matches]
        return "\n".join(matches)
    if mode == "First Group":
        match = re.search(pattern, string, flags)
        if match and len(match.groups()) >= group_index:
            return match.group(group_index) or ""
        return ""
    if mode == "All Groups":
        found = [match.group(group_index) or "" for match in re.finditer(pattern, string, flags)
                 if match.groups() and len(match.groups()) >= group_index]
        return "\n".join(found)
    return ""


class RegexReplace(_StringNode):
    """``re.sub``: replace matches (all, or the first ``count``) with ``replace``."""

    NODE_ID = "RegexReplace"
    DISPLAY_NAME = "Regex Replace"
    DESCRIPTION = "Replaces the parts of a string that match a regular expression."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"string": TEXT, "regex_pattern": TEXT, "replace": TEXT},
            "optional": {
                "case_insensitive": _flag(True),
                "multiline": _flag(False),
                "dotall": ("BOOLEAN", {
                    "tooltip": "Let . in the pattern also match line breaks (re.DOTALL).",
                    "default": False}),
                "count": ("INT", {
                    "tooltip": "Replace at most this many matches, first ones first; 0 replaces "
                               "every match.",
                    "default": 0, "min": 0, "max": 100}),
            },
        }

    def execute(self, string, regex_pattern, replace, case_insensitive=True, multiline=False,
                dotall=False, count=0):
        flags = regex_flags(case_insensitive, multiline, dotall)
        return (re.sub(regex_pattern, replace, string, count=count, flags=flags),)


NODES = node_entries([StringConcatenate, StringSubstring, StringLength, CaseConverter, StringTrim,
                      StringReplace, StringContains, StringCompare, RegexMatch, RegexExtract,
                      RegexReplace], PYTHON_MODULE)

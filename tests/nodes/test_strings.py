"""String nodes: results, regex flags, and ComfyUI's V3 declarations."""

from __future__ import annotations

import json

import pytest

from opencomfy.engine import NodeRegistry
from opencomfy.nodes import register_core_nodes, strings
from opencomfy.nodes.strings import (CaseConverter, RegexExtract, RegexMatch, RegexReplace,
                                     StringCompare, StringConcatenate, StringContains,
                                     StringLength, StringReplace, StringSubstring, StringTrim)


def run(cls, **inputs):
    return getattr(cls(), cls.FUNCTION)(**inputs)


def test_concatenate_substring_length_replace():
    assert run(StringConcatenate, string_a="ab", string_b="cd", delimiter=", ") == ("ab, cd",)
    assert run(StringSubstring, string="abcdef", start=1, end=-2) == ("bcd",)
    assert run(StringLength, string="héllo\n") == (6,)
    assert run(StringReplace, string="a.b.c", find=".", replace="--") == ("a--b--c",)


@pytest.mark.parametrize("mode,expected", [
    ("UPPERCASE", "HELLO WORLD"), ("lowercase", "hello world"),
    ("Capitalize", "Hello world"), ("Title Case", "Hello World"), ("other", "hello wORLD"),
])
def test_case_converter(mode, expected):
    assert run(CaseConverter, string="hello wORLD", mode=mode) == (expected,)


@pytest.mark.parametrize("mode,expected", [
    ("Both", "x y"), ("Left", "x y \n"), ("Right", "\t x y"),
])
def test_trim(mode, expected):
    assert run(StringTrim, string="\t x y \n", mode=mode) == (expected,)


def test_contains_and_compare_case_sensitivity():
    assert run(StringContains, string="Hello", substring="hell", case_sensitive=True) == (False,)
    assert run(StringContains, string="Hello", substring="hell", case_sensitive=False) == (True,)
    compare = dict(string_a="Prefix-body", case_sensitive=True)
    assert run(StringCompare, string_b="Prefix", mode="Starts With", **compare) == (True,)
    assert run(StringCompare, string_b="body", mode="Ends With", **compare) == (True,)
    assert run(StringCompare, string_b="prefix-body", mode="Equal", **compare) == (False,)
    assert run(StringCompare, string_a="ABC", string_b="abc", mode="Equal",
               case_sensitive=False) == (True,)


def match(pattern, string, case_insensitive=False, multiline=False, dotall=False):
    (result,) = run(RegexMatch, string=string, regex_pattern=pattern,
                    case_insensitive=case_insensitive, multiline=multiline, dotall=dotall)
    return result


def test_regex_match_flags():
    assert match("abc", "xABCx") is False
    assert match("abc", "xABCx", case_insensitive=True) is True
    assert match("^two$", "one\ntwo\nthree") is False
    assert match("^two$", "one\ntwo\nthree", multiline=True) is True
    assert match("a.b", "a\nb") is False
    assert match("a.b", "a\nb", dotall=True) is True
    assert match("(unclosed", "anything") is False  # invalid pattern: no match


def extract(pattern, string, mode, group_index=1, **flags):
    options = dict(case_insensitive=False, multiline=False, dotall=False) | flags
    (result,) = run(RegexExtract, string=string, regex_pattern=pattern, mode=mode,
                    group_index=group_index, **options)
    return result


TEXT = "id=12 name=Ann\nid=7 name=bob"


def test_regex_extract_modes():
    assert extract(r"id=\d+", TEXT, "First Match") == "id=12"
    assert extract(r"id=\d+", TEXT, "All Matches") == "id=12\nid=7"
    # With groups, All Matches keeps each match's first group.
    assert extract(r"id=(\d+) name=(\w+)", TEXT, "All Matches") == "12\n7"
    assert extract(r"id=(\d+) name=(\w+)", TEXT, "First Group", group_index=2) == "Ann"
    assert extract(r"id=(\d+) name=(\w+)", TEXT, "All Groups", group_index=2) == "Ann\nbob"
    assert extract(r"id=(\d+)", TEXT, "First Group", group_index=0) == "id=12"
    assert extract(r"id=(\d+)", TEXT, "First Group", group_index=3) == ""
    assert extract(r"zzz", TEXT, "First Match") == ""
    assert extract(r"(", TEXT, "All Matches") == ""


def test_regex_extract_flags():
    assert extract(r"NAME=(\w+)", TEXT, "First Group") == ""
    assert extract(r"NAME=(\w+)", TEXT, "First Group", case_insensitive=True) == "Ann"
    assert extract(r"^id=(\d+)$", "x\nid=5\ny", "First Group", multiline=True) == "5"
    assert extract(r"Ann.id", TEXT, "First Match", dotall=True) == "Ann\nid"


def test_regex_extract_an_unmatched_optional_group_gives_empty_text():
    assert extract(r"a(x)?", "a", "First Group") == ""
    assert extract(r"a(x)?", "a ax", "All Groups") == "\nx"


def test_regex_replace_count_flags_and_backreferences():
    def replace(pattern, string, repl, **options):
        return run(RegexReplace, string=string, regex_pattern=pattern, replace=repl,
                   **options)[0]

    assert replace("a", "AaAa", "-") == "----"            # case-insensitive by default
    assert replace("a", "AaAa", "-", case_insensitive=False) == "A-A-"
    assert replace("a", "aaaa", "b", count=2) == "bbaa"
    assert replace(r"(\w+)@(\w+)", "me@host", r"\2 at \1") == "host at me"
    assert replace("^x", "x\nx", "y", multiline=True) == "y\ny"
    assert replace("a.b", "a\nb", "_", dotall=True) == "_"
    assert replace("a.b", "a\nb", "_") == "a\nb"


def test_declarations_match_comfyui():
    entries = {name: (cls, display, module) for name, cls, display, module in strings.NODES}
    assert set(entries) == {"StringConcatenate", "StringSubstring", "StringLength",
                            "CaseConverter", "StringTrim", "StringReplace", "StringContains",
                            "StringCompare", "RegexMatch", "RegexExtract", "RegexReplace"}
    assert entries["StringConcatenate"][1] == "Concatenate"
    assert entries["RegexExtract"][1] == "Regex Extract"
    assert {entry[2] for entry in entries.values()} == {"comfy_extras.nodes_string"}
    concat = StringConcatenate.INPUT_TYPES()["required"]
    assert concat["string_a"] == ("STRING", {"multiline": True})
    assert concat["delimiter"] == ("STRING", {"default": "", "multiline": False})
    assert CaseConverter.INPUT_TYPES()["required"]["mode"] == ("COMBO", {
        "multiselect": False, "options": ["UPPERCASE", "lowercase", "Capitalize", "Title Case"]})
    assert RegexExtract.INPUT_TYPES()["required"]["group_index"] == (
        "INT", {"default": 1, "min": 0, "max": 100})
    replace = RegexReplace.INPUT_TYPES()
    assert list(replace["optional"]) == ["case_insensitive", "multiline", "dotall", "count"]
    assert replace["optional"]["count"][1]["default"] == 0
    assert RegexReplace.DESCRIPTION == "Replaces the parts of a string that match a regular expression."
    assert StringLength.RETURN_TYPES == ("INT",) and StringLength.RETURN_NAMES == ("length",)
    assert StringContains.RETURN_NAMES == ("contains",)
    assert RegexMatch.RETURN_NAMES == ("matches",)
    assert not hasattr(StringCompare, "RETURN_NAMES")
    for cls, _, _ in entries.values():
        assert cls.CATEGORY == "utils/string"
        json.dumps(cls.INPUT_TYPES())


def test_node_info_reads_as_comfyui_reports_it():
    registry = NodeRegistry()
    register_core_nodes(registry)
    info = registry.node_info("StringLength")
    assert info == {
        "input": {"required": {"string": ("STRING", {"multiline": True})}},
        "input_order": {"required": ["string"]},
        "output": ["INT"], "output_is_list": [False], "output_name": ["length"],
        "output_tooltips": [None], "name": "StringLength", "display_name": "Length",
        "description": "", "python_module": "comfy_extras.nodes_string",
        "category": "utils/string", "output_node": False, "deprecated": False,
        "experimental": False, "api_node": False,
    }
    replace = registry.node_info("RegexReplace")
    assert replace["input_order"] == {
        "required": ["string", "regex_pattern", "replace"],
        "optional": ["case_insensitive", "multiline", "dotall", "count"]}
    json.dumps(registry.object_info())

"""Our core catalogue against ComfyUI's own /object_info (tests/data/comfyui-object-info.json).

Every class we register that ComfyUI also has must describe itself the same way: input names,
types and options (tooltips aside: ours are our own words), input order, outputs, output names,
output_is_list, output_node, category, python_module and display name. The classes of the
reference we do not have yet are listed (not a failure: the library grows toward them).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opencomfy.engine import NodeRegistry
from opencomfy.nodes import register_core_nodes

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "comfyui-object-info.json"
COMPARED = ("input", "input_order", "output", "output_is_list", "output_name", "output_node",
            "category", "python_module")
# Combo inputs whose options are the files of a folder: compare the shape, not the files.
FILE_LIST_OPTIONS_DIFFER = True


def _normalise_input_spec(spec):
    if not isinstance(spec, (list, tuple)):
        return spec
    kind = spec[0]
    options = dict(spec[1]) if len(spec) > 1 and isinstance(spec[1], dict) else {}
    options.pop("tooltip", None)
    if isinstance(kind, (list, tuple)):
        kind = "COMBO:files" if FILE_LIST_OPTIONS_DIFFER and _looks_like_files(kind) else list(kind)
    return [kind, options]


def _looks_like_files(values) -> bool:
    return len(values) == 0 or all(isinstance(v, str) and "." in v[-6:] for v in values)


def normalise(info: dict) -> dict:
    out = {}
    for field in COMPARED:
        value = info.get(field)
        if field == "input":
            value = {section: {name: _normalise_input_spec(spec) for name, spec in entries.items()}
                     if isinstance(entries, dict) else entries
                     for section, entries in (value or {}).items() if entries}
        elif field == "input_order":
            value = {section: list(names) for section, names in (value or {}).items() if names}
        elif isinstance(value, tuple):
            value = list(value)
        out[field] = value
    for flag in ("api_node", "experimental", "deprecated"):
        out[flag] = bool(info.get(flag))
    return out


@pytest.fixture(scope="module")
def catalogues(tmp_path_factory):
    from opencomfy.compat import folder_paths

    # Empty folders, as on a fresh install: file lists must not depend on earlier tests' files.
    folder_paths.configure(base_directory=tmp_path_factory.mktemp("fresh_base"))
    registry = NodeRegistry()
    register_core_nodes(registry)
    ours = json.loads(json.dumps(registry.object_info()))
    reference = json.loads(REFERENCE.read_text())
    return ours, reference


def test_every_shared_class_matches_comfyuis_description(catalogues):
    ours, reference = catalogues
    mismatches = []
    for name, info in sorted(ours.items()):
        if name not in reference:
            continue
        a, b = normalise(info), normalise(reference[name])
        fields = [f for f in a if a[f] != b[f]]
        if reference[name].get("display_name") and info.get("display_name") != reference[name]["display_name"]:
            fields.append("display_name")
        if fields:
            a["display_name"], b["display_name"] = info.get("display_name"), reference[name].get("display_name")
            detail = "; ".join(f"{f}: ours={a.get(f)!r} ref={b.get(f)!r}"[:600] for f in fields)
            mismatches.append(f"{name}: {detail}")
    assert not mismatches, "\n".join(mismatches)


def test_report_reference_classes_not_yet_present(catalogues, capsys):
    ours, reference = catalogues
    missing = sorted(set(reference) - set(ours))
    with capsys.disabled():
        print(f"\n{len(set(reference) & set(ours))} of {len(reference)} ComfyUI core classes present;"
              f" not yet: {', '.join(missing)}")
    assert set(reference) & set(ours), "no class of the reference is registered"

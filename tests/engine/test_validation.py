"""Every validation error ComfyUI reports, plus dependency_cycle."""

from __future__ import annotations

import pytest

from tests.engine.helpers import link, make_engine, node


@pytest.fixture
def engine():
    return make_engine()


def only_error(validation, node_id):
    errors = validation.node_errors[node_id]["errors"]
    assert len(errors) == 1, errors
    return errors[0]


async def test_missing_class_type(engine):
    v = await engine.validate({"1": {"inputs": {}}})
    assert not v.ok
    assert v.error["type"] == "invalid_prompt"
    assert v.error["message"] == "Cannot execute because a node is missing the class_type property."
    assert v.error["details"] == "Node ID '#1'"


async def test_unknown_class(engine):
    v = await engine.validate({"5": node("NoSuchNode"), "6": node("Output", value=1)})
    assert v.error["type"] == "invalid_prompt"
    assert v.error["message"] == "Cannot execute because node NoSuchNode does not exist."
    assert v.error["extra_info"]["class_type"] == "NoSuchNode"


async def test_no_outputs(engine):
    v = await engine.validate({"1": node("IntConst", value=1)})
    assert v.error == {"type": "prompt_no_outputs", "message": "Prompt has no outputs", "details": "",
                       "extra_info": {}}


async def test_partial_execution_targets(engine):
    prompt = {"1": node("IntConst", value=1), "2": node("Output", value=link("1")),
              "3": node("Output", value=link("1"))}
    v = await engine.validate(prompt, ["3", "1", "nope"])
    assert v.ok and v.outputs == ["3"]
    v = await engine.validate(prompt, [])
    assert v.error["type"] == "prompt_no_outputs"


async def test_required_input_missing(engine):
    v = await engine.validate({"1": node("IntAdd", a=1), "2": node("Output", value=link("1"))})
    assert not v.ok
    assert v.error["type"] == "prompt_outputs_failed_validation"
    assert v.error["details"] == "Required input is missing: b"
    error = only_error(v, "1")
    assert error == {"type": "required_input_missing", "message": "Required input is missing",
                     "details": "b", "extra_info": {"input_name": "b"}}
    assert v.node_errors["1"]["dependent_outputs"] == ["2"]
    assert v.node_errors["1"]["class_type"] == "IntAdd"
    assert "2" not in v.node_errors  # invalid only because of its parent


async def test_bad_linked_input(engine):
    v = await engine.validate({"1": node("IntConst", value=1), "2": node("Output", value=["1", 0, 3])})
    error = only_error(v, "2")
    assert error["type"] == "bad_linked_input"
    assert error["message"] == "Bad linked input, must be a length-2 list of [node_id, slot_index]"
    assert error["extra_info"]["received_value"] == ["1", 0, 3]


async def test_return_type_mismatch(engine):
    prompt = {"1": node("ImageSource", value=1), "2": node("IntAdd", a=link("1", 0), b=1),
              "3": node("Output", value=link("2"))}
    v = await engine.validate(prompt)
    error = only_error(v, "2")
    assert error["type"] == "return_type_mismatch"
    assert error["details"] == "a, received_type(IMAGE) mismatch input_type(INT)"
    assert error["extra_info"]["received_type"] == "IMAGE"
    assert error["extra_info"]["linked_node"] == ["1", 0]


async def test_type_sets_and_any(engine):
    # "MASK,IMAGE" accepts MASK; an output typed with an AnyType feeds IMAGE.
    prompt = {"1": node("ImageSource", value=1), "2": node("TypedOutput", image=link("1", 3), mask=link("1", 1))}
    assert (await engine.validate(prompt)).ok
    prompt["2"]["inputs"]["mask"] = link("1", 2)  # LATENT is not in MASK,IMAGE
    v = await engine.validate(prompt)
    assert only_error(v, "2")["type"] == "return_type_mismatch"


async def test_invalid_input_type(engine):
    v = await engine.validate({"1": node("IntConst", value="abc"), "2": node("Output", value=link("1"))})
    error = only_error(v, "1")
    assert error["type"] == "invalid_input_type"
    assert error["message"] == "Failed to convert an input value to a INT value"
    assert error["details"].startswith("value, abc, invalid literal")


async def test_constants_are_coerced(engine):
    prompt = {"1": node("IntConst", value=5.9), "2": node("StringConst", value=12, flag=1),
              "3": node("Output", value=link("1")), "4": node("Output", value=link("2")),
              "5": node("FloatConst", value="0.25"), "6": node("Output", value=link("5"))}
    assert (await engine.validate(prompt)).ok
    assert prompt["1"]["inputs"]["value"] == 5
    assert prompt["2"]["inputs"] == {"value": "12", "flag": True}
    assert prompt["5"]["inputs"]["value"] == 0.25


async def test_value_smaller_and_bigger(engine):
    v = await engine.validate({"1": node("IntConst", value=-5000), "2": node("Output", value=link("1")),
                               "3": node("FloatConst", value=1.5), "4": node("Output", value=link("3"))})
    assert only_error(v, "1")["type"] == "value_smaller_than_min"
    assert only_error(v, "1")["message"] == "Value -5000 smaller than min of -1000"
    assert only_error(v, "3")["type"] == "value_bigger_than_max"
    assert only_error(v, "3")["message"] == "Value 1.5 bigger than max of 1.0"


async def test_value_not_in_list(engine):
    v = await engine.validate({"1": node("Combo", choice="pink", big="nope"), "2": node("Output", value=link("1"))})
    errors = v.node_errors["1"]["errors"]
    assert [e["type"] for e in errors] == ["value_not_in_list", "value_not_in_list"]
    assert errors[0]["details"] == "choice: 'pink' not in ['red', 'green', 'blue']"
    assert errors[1]["details"] == "big: 'nope' not in (list of length 30)"
    assert errors[1]["extra_info"]["input_config"] is None


async def test_value_wrapped_in___value__(engine):
    prompt = {"1": node("Combo", choice={"__value__": "red"}, big="file3"), "2": node("Output", value=link("1"))}
    assert (await engine.validate(prompt)).ok
    assert prompt["1"]["inputs"]["choice"] == "red"


@pytest.mark.parametrize("class_type", ["ValidateCustom", "ValidateAsync"])
async def test_custom_validation_failed(engine, class_type):
    v = await engine.validate({"1": node(class_type, value=13, other=5), "2": node("Output", value=link("1"))})
    error = only_error(v, "1")
    assert error["type"] == "custom_validation_failed"
    assert error["message"] == "Custom validation failed for node"
    assert error["details"].startswith("value - ")


async def test_validate_inputs_opts_its_inputs_out_of_range_checks(engine):
    # `value` is a VALIDATE_INPUTS parameter: its range check is skipped; `other` is not.
    v = await engine.validate({"1": node("ValidateCustom", value=50, other=5), "2": node("Output", value=link("1"))})
    assert v.ok
    v = await engine.validate({"1": node("ValidateCustom", value=5, other=50), "2": node("Output", value=link("1"))})
    assert only_error(v, "1")["type"] == "value_bigger_than_max"
    # **kwargs opts every input out
    v = await engine.validate({"1": node("ValidateKwargs", value=50, other=50), "2": node("Output", value=link("1"))})
    assert v.ok


async def test_validate_inputs_with_input_types_skips_type_check(engine):
    prompt = {"1": node("FloatConst", value=0.5), "2": node("ValidateTypes", value=link("1"))}
    assert (await engine.validate(prompt)).ok  # FLOAT into INT allowed by the node itself
    prompt = {"1": node("StringConst", value="x", flag=False), "2": node("ValidateTypes", value=link("1"))}
    v = await engine.validate(prompt)
    assert only_error(v, "2")["details"] == "input_types - cannot take STRING"


async def test_exception_during_validation(engine):
    v = await engine.validate({"1": node("ValidateRaises", value=1, other=1), "2": node("Output", value=link("1"))})
    error = only_error(v, "1")
    assert error["type"] == "exception_during_inner_validation"
    assert error["extra_info"]["exception_type"] == "KeyError"
    assert error["extra_info"]["linked_node"] == ["1", 0]
    # a link to a node that does not exist, on the output itself
    v = await engine.validate({"2": node("Output", value=link("99"))})
    error = only_error(v, "2")
    assert error["type"] == "exception_during_validation"
    assert error["message"] == "Exception when validating node"
    assert error["extra_info"]["traceback"]


async def test_partial_success(engine):
    prompt = {"1": node("IntConst", value=1), "2": node("Output", value=link("1")),
              "3": node("IntAdd", a=1), "4": node("Output", value=link("3"))}
    v = await engine.validate(prompt)
    assert v.ok and v.outputs == ["2"] and v.error is None
    assert v.node_errors["3"]["dependent_outputs"] == ["4"]


async def test_shared_bad_parent_lists_every_dependent_output(engine):
    prompt = {"1": node("IntConst", value="x"), "2": node("Output", value=link("1")),
              "3": node("Output", value=link("1"))}
    v = await engine.validate(prompt)
    assert v.node_errors["1"]["dependent_outputs"] == ["2", "3"]
    assert v.error["details"] == "Failed to convert an input value to a INT value: value, x, " \
        "invalid literal for int() with base 10: 'x'"


async def test_dependency_cycle(engine):
    prompt = {"1": node("IntAdd", a=link("2"), b=1), "2": node("IntAdd", a=link("1"), b=1),
              "3": node("Output", value=link("2"))}
    v = await engine.validate(prompt)
    assert not v.ok
    assert set(v.node_errors) == {"1", "2"}
    for node_id in ("1", "2"):
        error = only_error(v, node_id)
        assert error["type"] == "dependency_cycle"
        assert error["extra_info"]["cycle_nodes"] == ["1", "2"]


async def test_long_chain_validates_without_recursion_limit(engine):
    prompt = {"0": node("IntConst", value=1)}
    for i in range(1, 3000):
        prompt[str(i)] = node("IntAdd", a=link(str(i - 1)), b=1)
    prompt["out"] = node("Output", value=link("2999"))
    v = await engine.validate(prompt)
    assert v.ok


async def test_self_loop_is_a_cycle(engine):
    prompt = {"1": node("IntAdd", a=link("1"), b=1), "2": node("Output", value=link("1"))}
    v = await engine.validate(prompt)
    assert only_error(v, "1")["type"] == "dependency_cycle"
    assert v.node_errors["1"]["dependent_outputs"] == ["2"]


async def test_unvalidated_cycle_fails_at_run_time_instead_of_hanging(engine):
    prompt = {"1": node("IntAdd", a=link("2"), b=1), "2": node("IntAdd", a=link("1"), b=1),
              "3": node("Output", value=link("2"))}
    result = await engine.run(prompt, prompt_id="x", execute_outputs=["3"])
    assert result.status == "error"
    assert result.error["exception_type"] == "graph.DependencyCycleError"


async def test_a_class_whose_inputs_change_between_prompts_is_read_afresh():
    """INPUT_TYPES is asked once per prompt (a combo of files grows as files arrive); the
    spec built from it is reused only while its answer stays the same."""
    from opencomfy.engine import Engine, NodeRegistry
    from opencomfy.engine.node_spec import SpecCache

    files = ["a.png"]

    class PickFile:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"name": (list(files),)}}

        RETURN_TYPES = ()
        FUNCTION = "run"
        OUTPUT_NODE = True

        def run(self, name):
            return {}

    registry = NodeRegistry()
    registry.add("PickFile", PickFile)
    engine = Engine(registry)
    prompt = lambda: {"1": node("PickFile", name="b.png")}  # noqa: E731
    assert only_error(await engine.validate(prompt()), "1")["type"] == "value_not_in_list"
    first = SpecCache(registry).get("PickFile")
    assert SpecCache(registry).get("PickFile") is first  # unchanged answer: reused
    files.append("b.png")
    assert (await engine.validate(prompt())).ok
    assert SpecCache(registry).get("PickFile") is not first

"""The smallest end-to-end check: validate and run a three-node graph, then re-run from cache."""

from opencomfy.engine import Engine, NodeRegistry, RecordingSink


class _Const:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, value):
        return (value,)


class _Show:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT",)}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    def run(self, value):
        return {"ui": {"value": [value * 2]}}


async def test_validate_run_and_cached_rerun():
    registry = NodeRegistry()
    registry.add("Const", _Const)
    registry.add("Show", _Show)
    engine = Engine(registry)
    prompt = {"1": {"class_type": "Const", "inputs": {"value": "21"}},
              "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}}}
    validation = await engine.validate(prompt)
    assert validation.ok and validation.outputs == ["2"]
    assert prompt["1"]["inputs"]["value"] == 21  # coerced in place
    result = await engine.run(prompt, prompt_id="p1", execute_outputs=validation.outputs)
    assert result.status == "success"
    assert result.outputs == {"2": {"value": [42]}}
    sink = RecordingSink()
    again = await engine.run(prompt, prompt_id="p2", execute_outputs=validation.outputs, sink=sink)
    assert again.outputs == {"2": {"value": [42]}}
    assert sink.executed_nodes() == []
    assert sink.of_type("execution_cached")[0]["nodes"] == ["1", "2"]

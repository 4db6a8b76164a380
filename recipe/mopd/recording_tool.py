"""A verl `BaseTool` that stands in for a function with no implementation (BFCL's, ToolAlpaca's): it accepts
any call of its schema and answers with a fixed acknowledgement, so a multi-turn episode runs
[call ; acknowledgement ; closing turn] while the reward comes from the tool verifier scoring the calls the
policy wrote (data_prep/bfcl_multiturn.py).

verl's tool config (`actor_rollout_ref.rollout.multi_turn.tool_config_path`) declares one per function:

    tools:
      - class_name: recipe.mopd.recording_tool.RecordingTool
        config: {type: native, schema: <OpenAI function tool schema>}
        tool_schema: null

The schema sits in `config`, not in `tool_schema`, because verl parses `tool_schema` into pydantic models
that drop what they do not name (`items`, nested `properties`, `default`); `full_tool_schema` keeps all
of it, so the chat template shows the model the function exactly as the dataset wrote it.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict
from verl.tools.base_tool import BaseTool
from verl.tools.schemas import (
    OpenAIFunctionParametersSchema,
    OpenAIFunctionPropertySchema,
    OpenAIFunctionSchema,
    OpenAIFunctionToolSchema,
    ToolResponse,
)

ACKNOWLEDGEMENT = "The call was recorded."


class _Property(OpenAIFunctionPropertySchema):
    model_config = ConfigDict(extra="allow")


class _Parameters(OpenAIFunctionParametersSchema):
    model_config = ConfigDict(extra="allow")
    properties: dict[str, _Property]


class _Function(OpenAIFunctionSchema):
    model_config = ConfigDict(extra="allow")
    parameters: _Parameters


class _ToolSchema(OpenAIFunctionToolSchema):
    function: _Function


def full_tool_schema(schema: dict[str, Any]) -> OpenAIFunctionToolSchema:
    """verl's tool schema that keeps every JSON Schema key of `schema` (`{type: function, function:
    {name, description, parameters}}`). Raises pydantic.ValidationError when a required key is missing."""
    return _ToolSchema.model_validate(schema)


class RecordingTool(BaseTool):
    """Accepts every call and returns `ACKNOWLEDGEMENT`; no tool reward (0.0), no per-trajectory state."""

    def __init__(self, config: dict, tool_schema: OpenAIFunctionToolSchema | None = None):
        super().__init__(config, tool_schema or full_tool_schema(config["schema"]))

    async def execute(
        self, instance_id: str, parameters: dict[str, Any], **kwargs
    ) -> tuple[ToolResponse, float, dict]:
        return ToolResponse(text=ACKNOWLEDGEMENT), 0.0, {}

"""The bundled task's function tool, loaded by verl's tool_agent loop from
`actor_rollout_ref.rollout.multi_turn.function_tool_path` (its schema comes from the docstring)."""

from verl.tools.function_tool import function_tool


@function_tool
def add(a: int, b: int) -> str:
    """Add two integers.

    Args:
        a: The first addend.
        b: The second addend.
    """
    return str(int(a) + int(b))

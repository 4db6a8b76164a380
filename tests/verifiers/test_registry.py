import sys
import textwrap

import pytest

from verifiers import (
    RESULT_KEYS,
    UnknownVerifierError,
    VerifierResult,
    available_verifiers,
    get_verifier,
    register_verifier,
    route,
    unregister_verifier,
)


def test_builtins_are_registered():
    assert {"math", "code", "science", "tool"} <= set(available_verifiers())


def test_register_and_find_by_name():
    @register_verifier("test_exact")
    def exact(solution_str, ground_truth, extra_info=None):
        return VerifierResult.success() if solution_str == ground_truth else VerifierResult.failure("x", "no")

    try:
        assert get_verifier("test_exact") is exact
        assert route("test_exact/dataset") == "test_exact"
    finally:
        unregister_verifier("test_exact")


def test_duplicate_name_is_an_error():
    with pytest.raises(ValueError, match="already registered"):
        register_verifier("math")(lambda *args: 1.0)


@pytest.mark.parametrize("bad_name", ["", "a:b", "a/b"])
def test_bad_names_are_rejected(bad_name):
    with pytest.raises(ValueError):
        register_verifier(bad_name)


def test_unknown_name_lists_the_registered_ones():
    with pytest.raises(UnknownVerifierError, match="registered: .*math"):
        get_verifier("nope")


def test_module_reference_imports_user_code(tmp_path, monkeypatch):
    (tmp_path / "my_user_verifiers.py").write_text(
        textwrap.dedent(
            """
            from verifiers import register_verifier

            @register_verifier("user_length")
            def at_least_ten(solution_str, ground_truth, extra_info=None):
                return len(solution_str) >= 10
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        fn = get_verifier("my_user_verifiers:at_least_ten")
        assert fn("x" * 12, "") is True
        assert get_verifier("user_length") is fn  # importing the module registered it by name too
    finally:
        unregister_verifier("user_length")
        sys.modules.pop("my_user_verifiers", None)


@pytest.mark.parametrize("reference", ["no_such_module_xyz:fn", "json:no_such_function"])
def test_bad_module_reference(reference):
    with pytest.raises(UnknownVerifierError):
        get_verifier(reference)


def test_routing_prefers_extra_info():
    assert route("math/aime") == "math"
    assert route("code/livecodebench") == "code"
    assert route("science/sciknoweval/Biology") == "science"
    assert route("tool/toolalpaca") == "tool"
    assert route("whatever", {"verifier": "science"}) == "science"
    with pytest.raises(UnknownVerifierError, match="cannot route"):
        route("aime2024")


def test_result_dict_has_fixed_scalar_keys():
    row = VerifierResult.failure("wrong_answer", "no", pred="p" * 5000).to_dict("math")
    assert tuple(row) == RESULT_KEYS
    assert all(isinstance(value, float | int | bool | str) for value in row.values())
    assert len(row["pred"]) == 1000


@pytest.mark.parametrize(
    ("returned", "score", "acc"),
    [(True, 1.0, True), (0, 0.0, False), (0.5, 0.5, True), ({"score": 1.0, "pred": "x"}, 1.0, True)],
)
def test_user_return_values_are_coerced(returned, score, acc):
    result = VerifierResult.coerce(returned)
    assert (result.score, result.acc) == (score, acc)


def test_coerce_drops_unknown_keys_and_rejects_garbage():
    assert tuple(VerifierResult.coerce({"score": 0.0, "extra": [1, 2]}).to_dict("u")) == RESULT_KEYS
    with pytest.raises(TypeError):
        VerifierResult.coerce("yes")

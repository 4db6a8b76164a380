"""Code verifier: fenced-block extraction, sandboxed test runs, LiveCodeBench comparison."""

from verifiers.code.verifier import verify_code

__all__ = ["verify_code"]

"""Errors that mean the *setup* is wrong, as opposed to a bad model output.

`verl_reward.compute_score` lets these propagate so a misconfigured run fails at its first
batch instead of training on all-zero rewards; anything else a verifier raises becomes score 0.
"""


class VerifierConfigError(ValueError):
    """Base class: the caller, the data or the machine is misconfigured."""


class UnknownVerifierError(VerifierConfigError, KeyError):
    def __str__(self) -> str:
        # KeyError would print the message wrapped in quotes.
        return str(self.args[0]) if self.args else ""


class GroundTruthError(VerifierConfigError):
    """The ground truth of a row is not in the format its verifier reads."""


class SandboxUnavailableError(VerifierConfigError, RuntimeError):
    """No isolation mechanism works here and running unsandboxed was not opted into."""

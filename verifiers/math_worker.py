"""Child process that runs math-verify; started and killed by `verifiers.math_pool`.

Run as a script (`python math_worker.py`), so it needs only math-verify importable, not this
package. Protocol: one JSON request per line on stdin (`{"gold": str, "pred": str}`), one JSON
reply per line (`{"equal": bool}` or `{"error": str}`) on the original stdout; a `{"ready": true}`
line announces that the imports are done.

math-verify's own timeouts use SIGALRM, which breaks off the main thread and inside Ray, and cannot
interrupt sympy stuck in C code. They are disabled here; the parent enforces the deadline by
SIGKILLing this whole process.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import threading
import time


MEMORY_LIMIT_BYTES = 4 << 30


def _exit_when_orphaned(parent_pid: int) -> None:
    # stdin EOF is not noticed while sympy is busy; the parent may be gone (SIGKILL of the trainer).
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            os._exit(0)


def _parsers():
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    gold_targets = [LatexExtractionConfig()]
    gold_fallback_targets = [LatexExtractionConfig(), ExprExtractionConfig()]
    # Mostly math-verify's README advice for rewards: the boxed answer wins, no "nits" guessing. But
    # `\sqrt 3` and `\frac12` are valid TeX shorthand, so malformed_operators stays on (as in verl).
    pred_targets = [
        LatexExtractionConfig(
            boxed_match_priority=0,
            normalization_config=NormalizationConfig(
                basic_latex=True,
                units=True,
                malformed_operators=True,
                nits=False,
                boxed="all",
                equations=False,
            ),
        ),
        ExprExtractionConfig(),
    ]

    def check(gold: str, pred: str) -> bool:
        parsed_gold = parse("\\boxed{" + gold + "}", gold_targets, parsing_timeout=None)
        if not parsed_gold:
            parsed_gold = parse(gold, gold_fallback_targets, parsing_timeout=None)
        parsed_pred = parse("\\boxed{" + pred + "}", pred_targets, parsing_timeout=None)
        if not parsed_gold or not parsed_pred:
            return False
        # Gold first: verify() is deliberately asymmetric (a gold number accepts "a+b=101", not the reverse).
        return bool(verify(parsed_gold, parsed_pred, timeout_seconds=None))

    return check


def main() -> None:
    # An answer like 9^9^9^9 makes sympy build ever larger integers: fail with MemoryError here
    # rather than take the host's memory before the parent's deadline comes.
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    # Keep the protocol stream private: library prints and warnings go to stderr instead.
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1, encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    logging.disable(logging.WARNING)
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()

    check = _parsers()
    protocol.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = {"equal": check(request["gold"], request["pred"])}
        except Exception as error:  # math-verify raises on odd input; the parent scores it 0
            reply = {"error": f"{type(error).__name__}: {error}"[:500]}
        protocol.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    main()

"""Mean@k and the unbiased pass@k estimator (Chen et al., 2021) over per-problem sample counts."""

from __future__ import annotations

from collections.abc import Sequence


def _check_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")


def _check_k(k: int) -> None:
    _check_int("k", k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def _check_counts(n: int, c: int) -> None:
    _check_int("n", n)
    _check_int("c", c)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0 <= c <= n:
        raise ValueError(f"c must be in [0, n={n}], got {c}")


def pass_at_k(n: int, c: int, k: int) -> float:
    """P(at least one of k samples drawn without replacement from n is correct), c of n correct.

    1 - C(n-c, k) / C(n, k) is evaluated as 1 - prod_{i=n-c+1..n} (1 - k/i): the binomials overflow
    floats for realistic n (C(1000, 500) has 300 digits) while the product stays in [0, 1].
    """
    _check_counts(n, c)
    _check_k(k)
    if n < k:
        raise ValueError(f"pass@{k} needs at least k samples per problem, got n={n}")
    if n - c < k:
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


def _problems(num_samples: Sequence[int], num_correct: Sequence[int]) -> list[tuple[int, int]]:
    if len(num_samples) != len(num_correct):
        raise ValueError(f"{len(num_samples)} sample counts but {len(num_correct)} correct counts")
    if not num_samples:
        raise ValueError("no problems")
    for n, c in zip(num_samples, num_correct):
        _check_counts(n, c)
    return list(zip(num_samples, num_correct))


def mean_at_k(num_samples: Sequence[int], num_correct: Sequence[int]) -> float:
    """Average over problems of c/n: the per-problem accuracy of the sampled answers (= pass@1)."""
    problems = _problems(num_samples, num_correct)
    return sum(c / n for n, c in problems) / len(problems)


def mean_pass_at_k(num_samples: Sequence[int], num_correct: Sequence[int], k: int) -> float:
    """pass@k averaged over problems."""
    problems = _problems(num_samples, num_correct)
    return sum(pass_at_k(n, c, k) for n, c in problems) / len(problems)


def report_ks(k: int) -> list[int]:
    """The k values worth reporting from k samples: powers of two below k, then k itself."""
    _check_k(k)
    ks = []
    power = 1
    while power < k:
        ks.append(power)
        power *= 2
    return ks + [k]

"""Offline evaluation (Mean@k, pass@k) and the teacher-signal analysis of the MOPD paper (§5.3).

`evaluate` samples k answers per problem and scores them with the project's verifiers; `analysis`
scores saved rollout groups with a teacher under several peer-context variants and measures how well
the teacher's scores rank rollouts the way the verifier does.
"""

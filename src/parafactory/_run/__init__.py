"""Run-level services: logs, progress, the report, run numbers and CPU counts."""

"""The always-on process.

`serve`'s loop, the schedule, the one-process lock, /healthz, logging, and the wiring of a night from a config
file.
"""

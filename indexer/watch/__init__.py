"""`photoseek watch`: keep the catalog in step with photo folders for months on end.

Filesystem callbacks only enqueue events (events.py); one writer thread coalesces them, waits for
files to settle (settle.py) and applies them through the library's writer (daemon.py).
Importing this package imports neither torch nor watchdog.
"""

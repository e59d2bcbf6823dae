"""Runs a Python program and writes its peak RSS (KiB) to ``$BENCH_PEAK_RSS_FILE`` at exit.

Usage: ``python benchmarks/peak_rss.py -m etl sync ...`` (a module, as ``python -m``) or
``python benchmarks/peak_rss.py -p path/to/program.py ...`` (a file). It is started by path,
not as ``-m benchmarks...``, so that nothing but itself is imported before the program.

Peak RSS is the kernel's high-water mark of the process's own address space (``VmHWM`` in
``/proc/self/status``), read at exit. Not ``wait4``'s ``ru_maxrss``: Linux carries the
parent's high-water mark over a ``fork`` + ``exec``, so a 140 MB harness would make every
child "use" 140 MB.
"""

from __future__ import annotations

import atexit
import os
import runpy
import sys


def _write_peak_rss() -> None:
    with open("/proc/self/status") as status:
        kb = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(os.environ["BENCH_PEAK_RSS_FILE"], "w") as out:
        out.write(kb)


def run_program(argv: list[str]) -> None:
    """Run ``-m module args`` or ``-p path args`` as Python itself would, as ``__main__``."""
    kind, target = argv[0], argv[1]
    sys.argv = argv[1:]
    if kind == "-m":
        sys.path[0] = os.getcwd()  # as for `python -m`: the current directory, not ours
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.path[0] = os.path.dirname(os.path.abspath(target))  # as for `python path`
        runpy.run_path(target, run_name="__main__")


if __name__ == "__main__":
    atexit.register(_write_peak_rss)
    run_program(sys.argv[1:])

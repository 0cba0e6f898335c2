"""Imported first by every benchmark script.

``benchmarks/queue.py`` has the name of the standard library's ``queue``, which redis-py
imports, and running a script puts this directory first on ``sys.path``. This takes the
directory off while the real ``queue`` loads, then puts it back at the end (for
``_common``), with ``queue_worker/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
import queue  # noqa: E402, F401  (the standard library's, cached for redis-py)

sys.path.append(str(HERE))
sys.path.append(str(HERE / "queue_worker"))  # the queue benchmarks' worker app and peers

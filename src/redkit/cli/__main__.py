"""``python -m redkit.cli``: the same as the ``redkit`` console script."""

from __future__ import annotations

from redkit.cli import main

if __name__ == "__main__":
    main()

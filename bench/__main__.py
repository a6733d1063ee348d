"""Entry point of `python -m bench`; `python -m bench --render latest.json` rewrites the
report from the raw results of an earlier run, without measuring anything."""

from __future__ import annotations

import sys

from .run import main, rerender

if sys.argv[1:2] == ["--render"] and len(sys.argv) == 3:
    sys.exit(rerender(sys.argv[2]))
sys.exit(main())

"""``python -m sweeper.dispatch FD PARENT_PID``: the driver of a sweep that ``sweeper run``
supervises (:mod:`sweeper.dispatch.supervisor`, :mod:`sweeper.dispatch.supervised`); not a
command for users."""

from __future__ import annotations

import sys

from sweeper.dispatch.supervised import child_main

if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))

"""Named points where a test can make the process die or the disk fill up (fault injection).

Production code calls ``point(name)`` at each place a crash matters; it does nothing unless a test armed
that point in this process (``arm``), typically in a child process started to be killed::

    from transforms.store import faults
    faults.arm("commit.swap", after=2)          # SIGKILL at the 2nd time the point is reached
    faults.arm("commit.ledger", action="enospc") # raise OSError(ENOSPC) there instead

Points (see ``POINTS``): ``commit.journaled`` (journal on disk, nothing swapped), ``commit.swap`` (between
two partition swaps of one commit), ``commit.manifest`` (data and manifest swapped, ledger row not
written), ``commit.done`` (after each commit, once per load it made
visible: a batch's loads are one commit), ``rules.check`` (before each return's DfE rules),
``rules.checked`` (rules results written, pending record not cleared), ``catalogue.build`` (new catalogue
file half built), ``stage.write`` (writing staged Parquet).
"""
from __future__ import annotations

import errno
import os
import signal

POINTS = ("commit.journaled", "commit.swap", "commit.manifest", "commit.done", "rules.check",
          "rules.checked", "catalogue.build", "stage.write")
_armed: dict[str, list] = {}


class Killed(BaseException):
    """Raised at an armed point with ``action="raise"``: an in-process stand-in for SIGKILL (nothing
    catches a BaseException on the way out, though ``finally`` blocks run, as a kill's would not)."""


def arm(name: str, after: int = 1, action: str = "kill") -> None:
    """Fire at the ``after``-th time ``name`` is reached: ``kill`` (SIGKILL to this process), ``raise``
    (``Killed``) or ``enospc`` (``OSError`` ENOSPC naming ``path``)."""
    if name not in POINTS:
        raise ValueError(f"unknown fault point {name!r}; known: {', '.join(POINTS)}")
    if action not in ("kill", "raise", "enospc"):
        raise ValueError(f"unknown fault action {action!r}")
    _armed[name] = [after, action]


def disarm() -> None:
    _armed.clear()


def point(name: str, path: object = None) -> None:
    armed = _armed.get(name)
    if armed is None:
        return
    armed[0] -= 1
    if armed[0] > 0:
        return
    del _armed[name]
    if armed[1] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if armed[1] == "raise":
        raise Killed(name)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path) if path is not None else None)

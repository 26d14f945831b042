"""System mode: the operator's switch on what the bot may send."""

from __future__ import annotations

from enum import StrEnum


class SystemMode(StrEnum):
    """What the engine may do.

    NORMAL sends everything that passes the limits; OBSERVATION decides and audits but
    sends nothing; PAUSE sends only exposure-reducing orders (and cancels); KILL sends
    only the kill switch's own cancels and reduce-only closing orders (latched).
    """

    NORMAL = "normal"
    OBSERVATION = "observation"
    PAUSE = "pause"
    KILL = "kill"

"""Engage the kill switch: KILL latched, every open order cancelled, every position closed."""

from apps.ops.management.commands._mode import ModeCommand


class Command(ModeCommand):
    help = "Engage the kill switch: KILL latched, every open order cancelled, every position closed. Dry run unless --execute; --reason is required; audited as cli:<os user>."
    target = "kill"

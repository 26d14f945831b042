"""Set the system mode to PAUSE (only exposure-reducing orders and cancels go out)."""

from apps.ops.management.commands._mode import ModeCommand


class Command(ModeCommand):
    help = "Set the system mode to PAUSE (only exposure-reducing orders and cancels go out). Dry run unless --execute; --reason is required; audited as cli:<os user>."
    target = "pause"

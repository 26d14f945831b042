"""Set the system mode back to NORMAL (from PAUSE or OBSERVATION; leaving KILL needs the panel with 2FA and a closed incident)."""

from apps.ops.management.commands._mode import ModeCommand


class Command(ModeCommand):
    help = "Set the system mode back to NORMAL (from PAUSE or OBSERVATION; leaving KILL needs the panel with 2FA and a closed incident). Dry run unless --execute; --reason is required; audited as cli:<os user>."
    target = "normal"

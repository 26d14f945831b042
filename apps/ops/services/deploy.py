"""Trading around a deploy: PAUSE while containers are replaced, then the mode it had.

``scripts/deploy.sh`` (run on the server by the deploy workflow) calls these through
``manage.py deploy_mode pause|restore --release <sha> --execute`` on the running app:

- ``deploy_pause``: NORMAL or OBSERVATION -> PAUSE (actor ``deploy``, the release in the
  reason), so no new exposure is taken while the engine and the workers restart; a PAUSE
  or KILL already in place is left as it is.
- ``deploy_restore``: back to the mode before that pause, but only if the pause is still
  the last mode change: a person, a rule or the kill switch that changed the mode during
  the deploy (or a rollback that kept trading paused on purpose) wins, and trading stays
  as they left it.
"""

from __future__ import annotations

from dataclasses import dataclass

from apps.risk.domain.modes import SystemMode
from apps.risk.models import ModeChange, ModeSource
from apps.risk.services.modes import system_mode_get, system_mode_set

DEPLOY_ACTOR = "deploy"


@dataclass(frozen=True)
class DeployStep:
    changed: bool
    mode: SystemMode  # the mode after the step (or that it would leave, on a dry run)
    message: str


def _reason(release: str) -> str:
    return f"deploy {release}: paused while the containers are replaced"


def _release(release: str) -> str:
    release = release.strip()
    if not release or len(release) > 64 or not all(c.isalnum() or c in "._-" for c in release):
        raise ValueError(
            f"release {release!r} is not a release name: give the commit or tag being "
            "deployed (letters, digits, '.', '_' or '-', at most 64)"
        )
    return release


def deploy_pause(*, release: str, execute: bool) -> DeployStep:
    """PAUSE for the deploy of ``release`` (a dry run unless ``execute``)."""
    release = _release(release)
    current = system_mode_get()
    if current in (SystemMode.PAUSE, SystemMode.KILL):
        return DeployStep(False, current, f"mode is already {current.value.upper()}: left as it is")
    if not execute:
        return DeployStep(False, current, f"would pause: {current.value.upper()} -> PAUSE")
    system_mode_set(
        mode=SystemMode.PAUSE,
        actor=DEPLOY_ACTOR,
        source=ModeSource.SYSTEM,
        reason=_reason(release),
    )
    return DeployStep(True, SystemMode.PAUSE, f"paused: {current.value.upper()} -> PAUSE")


def deploy_restore(*, release: str, execute: bool) -> DeployStep:
    """The mode before the deploy's pause, if nothing else changed the mode since."""
    release = _release(release)
    current = system_mode_get()
    last = ModeChange.objects.order_by("-created_at", "-id").first()
    ours = (
        last is not None
        and last.actor == DEPLOY_ACTOR
        and last.to_mode == SystemMode.PAUSE.value
        and last.reason == _reason(release)
    )
    if not ours or current is not SystemMode.PAUSE:
        who = f"{last.actor}: {last.from_mode} -> {last.to_mode}" if last else "nobody"
        return DeployStep(
            False,
            current,
            f"mode {current.value.upper()} left as it is: the last mode change is not this "
            f"deploy's pause (it was {who}); resume by hand when it is safe "
            "(manage.py resume --reason ... --execute, or the panel)",
        )
    assert last is not None
    previous = SystemMode(last.from_mode)
    if not execute:
        return DeployStep(False, current, f"would restore: PAUSE -> {previous.value.upper()}")
    system_mode_set(
        mode=previous,
        actor=DEPLOY_ACTOR,
        source=ModeSource.SYSTEM,
        reason=f"deploy {release}: healthy, back to the mode before the deploy",
    )
    return DeployStep(True, previous, f"restored: PAUSE -> {previous.value.upper()}")

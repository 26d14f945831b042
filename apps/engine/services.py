"""Trading plans: create, edit, (de)activate; validated (``TradingPlan.full_clean``) and audited.

Every change leaves an ``AuditEvent`` (``plan.create``, ``plan.update``, ``plan.activate``,
``plan.deactivate``; target ``plan:<id>``) with the actor and the old and new values. Bad
input raises ``django.core.exceptions.ValidationError`` whose ``message_dict`` names the
field that was wrong; nothing is written then. The engine reads plans through
``apps.engine.selectors`` (``plans_active``, ``plans_version``).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.accounts.models import Account
from apps.audit.services import audit_record
from apps.engine.models import TradingPlan
from apps.marketdata.models import Instrument

# What plan_update may change. The account is not one of them: a plan of another
# account is another plan (create it there).
EDITABLE_FIELDS = ("venue", "instrument", "timeframe", "strategy", "params", "stake", "active")


def validation_text(exc: ValidationError) -> str:
    """``"field: message; other: message"`` (``__all__`` errors without a field name)."""
    if not hasattr(exc, "error_dict"):
        return " ".join(exc.messages)
    return "; ".join(
        " ".join(msgs) if field == "__all__" else f"{field}: {' '.join(msgs)}"
        for field, msgs in exc.message_dict.items()
    )


def _decimal_text(value: object) -> str | None:
    """``Decimal("1000.000000000000")`` -> ``"1000"`` (the same stake reads the same)."""
    if value is None:
        return None
    if isinstance(value, Decimal) and value.is_finite():
        return format(value.normalize(), "f")
    return str(value)


def plan_snapshot(plan: TradingPlan) -> dict[str, Any]:
    """The plan's values as plain JSON (what the audit rows record)."""
    return {
        "account": plan.account.name if plan.account_id else None,
        "venue": plan.venue,
        "instrument": plan.instrument.symbol if plan.instrument_id else None,
        "timeframe": plan.timeframe,
        "strategy": plan.strategy,
        "params": dict(plan.params or {}),
        "stake": _decimal_text(plan.stake),
        "active": plan.active,
    }


def _instrument(value: Instrument | str | int | None) -> Instrument:
    """An Instrument, or its symbol (case-insensitive) or id; ValidationError on "instrument"."""
    if isinstance(value, Instrument):
        return value
    if isinstance(value, bool) or value is None or (isinstance(value, str) and not value.strip()):
        raise ValidationError({"instrument": "instrument is required: a symbol like BTC-USD"})
    if isinstance(value, int):
        found = Instrument.objects.filter(pk=value).first()
    else:
        found = Instrument.objects.filter(symbol=str(value).strip().upper()).first()
    if found is None:
        raise ValidationError(
            {
                "instrument": f"unknown instrument {value!r}: use the symbol of an instrument "
                "in the database (BASE-QUOTE for crypto, a ticker for equities)"
            }
        )
    return found


def _account(value: Account | int | str | None) -> Account:
    if isinstance(value, Account):
        return value
    if isinstance(value, bool) or value is None or value == "":
        raise ValidationError({"account": "account is required"})
    found = (
        Account.objects.filter(pk=value).first()
        if isinstance(value, int)
        else Account.objects.filter(name=str(value).strip()).first()
    )
    if found is None:
        raise ValidationError({"account": f"unknown account {value!r}"})
    return found


def _stake(value: object) -> object:
    """A stake as Decimal when it reads as one (floats go through their text: 0.1 -> 0.1)."""
    if isinstance(value, bool):
        raise ValidationError({"stake": f"stake must be a number greater than 0, got {value!r}"})
    if isinstance(value, int | float | str):
        try:
            return Decimal(str(value).strip())
        except InvalidOperation:
            raise ValidationError(
                {"stake": f"stake must be a number greater than 0, got {value!r}"}
            ) from None
    return value


def _save_checked(plan: TradingPlan) -> None:
    plan.full_clean()
    plan.save()


def plan_create(
    *,
    account: Account | int | str,
    venue: str,
    instrument: Instrument | str | int,
    timeframe: str,
    strategy: str,
    params: dict[str, Any] | None = None,
    stake: Decimal | str | int,
    active: bool = True,
    actor: str,
) -> TradingPlan:
    """A new plan for ``account`` (an Account, its id or name); audited ``plan.create``.

    ``instrument`` is an Instrument, its symbol or its id. Raises ValidationError naming
    the bad field (unknown venue, instrument, timeframe or strategy, params the strategy
    refuses, stake <= 0, a venue the account cannot trade, a duplicate plan); nothing saved.
    """
    plan = TradingPlan(
        account=_account(account),
        venue=venue,
        instrument=_instrument(instrument),
        timeframe=timeframe,
        strategy=strategy,
        params=params if params is not None else {},
        stake=_stake(stake),
        active=active,
    )
    with transaction.atomic():
        _save_checked(plan)
        audit_record(
            actor=actor, action="plan.create", target=f"plan:{plan.pk}", data=plan_snapshot(plan)
        )
    return plan


def plan_update(*, plan: TradingPlan, actor: str, **fields: Any) -> TradingPlan:
    """Change some of ``EDITABLE_FIELDS``; audited ``plan.update`` with old and new values.

    The row is re-read under a lock, so ``plan`` may be stale. Changing nothing writes
    nothing (no audit row, ``plans_version`` unchanged). Raises ValidationError naming
    the bad field; nothing is saved then.
    """
    refused = sorted(set(fields) - set(EDITABLE_FIELDS))
    if refused:
        name = refused[0]
        message = (
            "a plan's account cannot change: create the plan on the other account"
            if name == "account"
            else f"unknown plan field {name!r}: editable are {', '.join(EDITABLE_FIELDS)}"
        )
        raise ValidationError({name: message})
    if "instrument" in fields:
        fields["instrument"] = _instrument(fields["instrument"])
    if "stake" in fields:
        fields["stake"] = _stake(fields["stake"])
    if "params" in fields and fields["params"] is None:
        fields["params"] = {}
    with transaction.atomic():
        current = (
            TradingPlan.objects.select_for_update()
            .select_related("account", "instrument")
            .get(pk=plan.pk)
        )
        old = plan_snapshot(current)
        for name, value in fields.items():
            setattr(current, name, value)
        current.full_clean()  # also normalises params, so the comparison below is fair
        new = plan_snapshot(current)
        changed = {k: {"old": old[k], "new": new[k]} for k in new if old[k] != new[k]}
        if changed:
            current.save()
            action = "plan.update"
            if set(changed) == {"active"}:
                action = "plan.activate" if current.active else "plan.deactivate"
            audit_record(
                actor=actor,
                action=action,
                target=f"plan:{current.pk}",
                data={"plan": new, "changed": changed},
            )
    return current


def plan_set_active(*, plan: TradingPlan, active: bool, actor: str) -> TradingPlan:
    """Turn a plan on or off (``plan.activate`` / ``plan.deactivate``); a no-op writes nothing.

    Activating re-validates the whole plan (a strategy or instrument may have gone since).
    """
    return plan_update(plan=plan, actor=actor, active=bool(active))

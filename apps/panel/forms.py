"""Input of the panel's controls (HTML forms) and of the JSON endpoints (same rules)."""

from __future__ import annotations

from django import forms

from apps.risk.domain.modes import SystemMode

# What each mode button of the panel asks for. "resume" is NORMAL; leaving KILL is only
# ever to OBSERVATION (the service refuses anything else, with its reason).
MODE_ACTIONS = {
    "pause": SystemMode.PAUSE,
    "resume": SystemMode.NORMAL,
    "normal": SystemMode.NORMAL,
    "observation": SystemMode.OBSERVATION,
}
REASON_MAX = 500
TEXT_MAX = 5000


def mode_from_input(value: object) -> SystemMode | None:
    """A mode name from a form or JSON ("pause", "resume", "normal", "observation")."""
    if not isinstance(value, str):
        return None
    return MODE_ACTIONS.get(value.strip().lower())


class ModeSetForm(forms.Form):
    mode = forms.ChoiceField(choices=[(k, k) for k in MODE_ACTIONS])
    reason = forms.CharField(max_length=REASON_MAX, strip=True)

    def clean_mode(self) -> SystemMode:
        mode = mode_from_input(self.cleaned_data["mode"])
        if mode is None:
            raise forms.ValidationError("unknown mode")
        return mode


class KillReasonField(forms.CharField):
    """The kill switch's reason: any text is taken (no NUL check, no length limit), the
    service cleans what PostgreSQL cannot store and cuts it (``kill_switch_engage``)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(strip=True, **kwargs)  # type: ignore[arg-type]
        self.validators = []  # CharField adds ProhibitNullCharactersValidator


class KillSwitchForm(forms.Form):
    """Step 1 asks for the reason; step 2 (confirm=yes) engages, whatever the reason holds."""

    reason = KillReasonField(widget=forms.TextInput(attrs={"maxlength": REASON_MAX}))
    confirm = forms.BooleanField(required=False)


class IncidentUpdateForm(forms.Form):
    what_happened = forms.CharField(
        max_length=TEXT_MAX, strip=True, required=False, widget=forms.Textarea(attrs={"rows": 4})
    )
    cause = forms.CharField(
        max_length=TEXT_MAX, strip=True, required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    action_taken = forms.CharField(
        max_length=TEXT_MAX, strip=True, required=False, widget=forms.Textarea(attrs={"rows": 3})
    )


# The editable risk limits (apps.risk.models.RiskLimit, docs/risk-contract.md); values go
# to risk_limit_set as strings, which validates each against its settings ceiling.
LIMIT_FIELDS = (
    ("max_order_notional", "Max order notional"),
    ("max_position_notional", "Max position notional"),
    ("max_gross_exposure", "Max gross exposure"),
    ("max_open_positions", "Max open positions"),
    ("price_collar_pct", "Price collar (fraction)"),
    ("max_orders_per_minute", "Max orders per minute"),
    ("duplicate_window_seconds", "Duplicate window (s)"),
)


class RiskLimitForm(forms.Form):
    account_id = forms.IntegerField(widget=forms.HiddenInput)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        for name, label in LIMIT_FIELDS:
            self.fields[name] = forms.CharField(label=label, max_length=40, required=False)

    def limit_values(self) -> dict[str, str]:
        """The non-empty limit fields, as strings (the service parses and checks them)."""
        return {
            name: self.cleaned_data[name].strip()
            for name, _ in LIMIT_FIELDS
            if self.cleaned_data.get(name, "").strip()
        }

"""The trading plan form shared by the admin and the control panel.

Only presentation lives here (selects of the registered strategies and the active
instruments); every rule is ``TradingPlan.clean``, which a ModelForm runs on ``is_valid``,
so a bad plan is an error on its field and nothing is saved.
"""

from __future__ import annotations

from typing import Any

from django import forms

from apps.engine.models import TradingPlan
from apps.strategies.domain.registry import STRATEGIES

PLAN_FORM_FIELDS = (
    "account",
    "venue",
    "instrument",
    "timeframe",
    "strategy",
    "params",
    "stake",
    "active",
)


def strategy_choices() -> list[tuple[str, str]]:
    """The registered strategies (``ml`` is there once apps.ml is ready)."""
    return [(name, name) for name in sorted(STRATEGIES)]


class TradingPlanForm(forms.ModelForm):
    class Meta:
        model = TradingPlan
        fields = PLAN_FORM_FIELDS
        widgets = {"params": forms.Textarea(attrs={"rows": 2, "cols": 40})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A select of what is registered; a value posted by hand that is not registered
        # still reaches TradingPlan.clean, which names the strategies there are.
        self.fields["strategy"].widget = forms.Select(choices=strategy_choices())
        self.fields["params"].help_text = (
            'JSON object, e.g. {"fast": "10", "slow": "30"}; "ml" takes {} (the active '
            'model) or {"threshold": "0.6"}'
        )
        if self.instance.pk is not None:  # a plan keeps its account
            self.fields["account"].disabled = True

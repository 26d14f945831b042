"""The panel's ML page: active model, reliability diagram, ECE history, drift, counts."""

from __future__ import annotations

from typing import Any

from django.views.generic import TemplateView

from apps.core.access import VerifiedStaffRequiredMixin
from apps.ml.selectors import ml_page_snapshot


class MlPageView(VerifiedStaffRequiredMixin, TemplateView):
    """OTP-verified staff only, like every operator page."""

    template_name = "ml/ml.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["ml"] = ml_page_snapshot()
        return context

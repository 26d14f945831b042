from django.urls import path

from apps.ml.views import MlPageView

app_name = "ml"

urlpatterns = [
    path("", MlPageView.as_view(), name="page"),
]

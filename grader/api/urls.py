from django.urls import path

from . import views

urlpatterns: list = [
    path("read", views.read, name="api_read"),
]

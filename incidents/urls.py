from django.urls import path

from incidents import views

urlpatterns = [
    path("webhooks/bounces/<str:provider>/", views.bounce_webhook, name="bounce-webhook"),
    path("subscribe/", views.subscribe, name="subscribe"),
    path(
        "subscriptions/confirm/<str:token>/",
        views.subscription_confirm,
        name="subscription-confirm",
    ),
    path(
        "subscriptions/manage/<str:token>/", views.subscription_manage, name="subscription-manage"
    ),
    path(
        "subscriptions/unsubscribe/<str:token>/",
        views.subscription_unsubscribe,
        name="subscription-unsubscribe",
    ),
]

from django.urls import path

from incidents import push_views, views

urlpatterns = [
    path("webhooks/bounces/<str:provider>/", views.bounce_webhook, name="bounce-webhook"),
    path("subscribe/", views.subscribe, name="subscribe"),
    path("sw.js", push_views.service_worker, name="push-service-worker"),
    path("push/key/", push_views.public_key, name="push-key"),
    path("push/subscribe/", push_views.subscribe, name="push-subscribe"),
    path("push/resubscribe/", push_views.resubscribe, name="push-resubscribe"),
    path("push/unsubscribe/", push_views.unsubscribe, name="push-unsubscribe"),
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

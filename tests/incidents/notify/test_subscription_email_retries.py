"""Confirmation emails are tried again after any transient failure, and not after a refusal
for good; a real SMTP server (aiosmtpd) answers 4xx, then 250."""

import asyncio
import logging
from dataclasses import dataclass, field

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import OperationalError

from incidents import tasks
from incidents.notify.models import Subscriber
from statuspage.celery import app
from tests.incidents.factories import SubscriberFactory
from tests.incidents.notify.conftest import CapturingHandler, serving_smtp


@dataclass
class FlakyHandler(CapturingHandler):
    """Answers each stage with its queued replies first (`rcpt`, `data`, `mail`), then
    accepts; counts the attempts."""

    rcpt: list = field(default_factory=list)
    data: list = field(default_factory=list)
    mail: list = field(default_factory=list)
    stall_data_seconds: list = field(default_factory=list)
    attempts: int = 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.attempts += 1
        if self.mail:
            return self.mail.pop(0)
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt:
            return self.rcpt.pop(0)
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server, session, envelope):
        if self.stall_data_seconds:
            await asyncio.sleep(self.stall_data_seconds.pop(0))
        if self.data:
            return self.data.pop(0)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def flaky_smtp(settings):
    with serving_smtp(FlakyHandler(), settings) as handler:
        yield handler


@pytest.fixture
def eager(settings):
    # Retries run at once, in this thread, as many times as the task allows.
    settings.CELERY_TASK_ALWAYS_EAGER = True


def unconfirmed():
    return SubscriberFactory(state="unconfirmed")


TRANSIENT = {
    "recipient 451": {"rcpt": ["451 4.3.2 Try again later"]},
    "recipient 421": {"rcpt": ["421 4.7.0 Closing, try later"]},
    "recipient 450 twice": {"rcpt": ["450 4.2.1 Mailbox busy", "450 4.2.1 Mailbox busy"]},
    "data 452": {"data": ["452 4.3.1 Insufficient storage"]},
    "sender 451": {"mail": ["451 4.3.0 Local problem"]},
}


@pytest.mark.parametrize("replies", TRANSIENT.values(), ids=TRANSIENT.keys())
@pytest.mark.django_db
def test_a_confirmation_email_is_sent_again_after_a_transient_refusal(
    page, flaky_smtp, eager, replies
):
    subscriber = unconfirmed()
    for stage, answers in replies.items():
        getattr(flaky_smtp, stage).extend(answers)

    tasks.send_subscription_email.delay("confirm", subscriber.pk)

    [message] = flaky_smtp.to(subscriber.email)
    assert message["Subject"] == "[Acme] Confirm your subscription"
    assert flaky_smtp.attempts == 1 + max(len(answers) for answers in replies.values())


@pytest.mark.django_db
def test_a_confirmation_email_is_sent_again_after_a_timeout(page, flaky_smtp, eager, settings):
    settings.EMAIL_TIMEOUT = 0.5
    flaky_smtp.stall_data_seconds.append(1.5)
    subscriber = unconfirmed()

    tasks.send_subscription_email.delay("confirm", subscriber.pk)

    assert len(flaky_smtp.to(subscriber.email)) >= 1


@pytest.mark.django_db
def test_a_confirmation_email_is_sent_again_when_the_database_was_away(
    page, flaky_smtp, eager, monkeypatch
):
    subscriber = unconfirmed()
    real_filter = Subscriber.objects.filter
    failures = [OperationalError("server closed the connection unexpectedly")]

    def filter_once_failing(*args, **kwargs):
        if failures:
            raise failures.pop()
        return real_filter(*args, **kwargs)

    monkeypatch.setattr(Subscriber.objects, "filter", filter_once_failing)

    tasks.send_subscription_email.delay("confirm", subscriber.pk)

    assert len(flaky_smtp.to(subscriber.email)) == 1


PERMANENT = {
    "no such user": {"rcpt": ["550 5.1.1 No such user"]},
    "mailbox disabled": {"rcpt": ["554 5.7.1 Relay access denied"]},
    "message rejected": {"data": ["554 5.7.1 Message rejected as spam"]},
}


@pytest.mark.parametrize("replies", PERMANENT.values(), ids=PERMANENT.keys())
@pytest.mark.django_db
def test_a_confirmation_email_refused_for_good_is_not_sent_again(
    page, flaky_smtp, eager, replies, caplog
):
    subscriber = unconfirmed()
    for stage, answers in replies.items():
        getattr(flaky_smtp, stage).extend(answers)

    with caplog.at_level(logging.WARNING, logger="beacon.notify"):
        tasks.send_subscription_email.delay("confirm", subscriber.pk)

    assert flaky_smtp.attempts == 1
    assert not flaky_smtp.messages
    assert "refused for good" in caplog.text and "5" in caplog.text


@pytest.fixture
def notify_worker(transactional_db):
    app.control.purge()  # what earlier tests queued is not this test's business
    with start_worker(
        app, pool="solo", perform_ping_check=False, shutdown_timeout=10, queues=["notify"]
    ) as worker:
        yield worker


def test_a_worker_retries_a_confirmation_the_server_deferred(page, flaky_smtp, notify_worker):
    import time

    flaky_smtp.rcpt.append("451 4.3.2 Try again later")
    subscriber = unconfirmed()

    tasks.send_subscription_email.delay("confirm", subscriber.pk)

    deadline = time.monotonic() + 20
    while not flaky_smtp.to(subscriber.email) and time.monotonic() < deadline:
        time.sleep(0.1)
    [message] = flaky_smtp.to(subscriber.email)
    assert "Confirm" in message["Subject"]
    assert flaky_smtp.attempts == 2

import contextlib
import email
import email.policy
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass, field

import httpx
import pytest
import trustme
from aiosmtpd.controller import Controller
from pytest_httpserver import HTTPServer

from incidents.notify.channels import webhook
from statuspage.lib import network


@dataclass
class CapturingHandler:
    """Keeps every accepted message; `refuse` maps a recipient to an SMTP reply."""

    messages: list = field(default_factory=list)
    refuse: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.refuse.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list:
        return [m for m in self.messages if m["To"] == address]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving_smtp(handler, settings):
    """Run `handler` as a real SMTP server (aiosmtpd) and point Django's mail at it."""
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 10
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server on a free port that keeps what it accepts."""
    with serving_smtp(CapturingHandler(), settings) as handler:
        yield handler


@contextlib.contextmanager
def tls_endpoint(monkeypatch, host_name: str, path: str):
    """An HTTPS endpoint on 127.0.0.1 whose certificate names `host_name`, which the DNS
    lookup (the edge) answers with 127.0.0.1. Beacon's webhook client trusts only the
    public CAs, so it is given the test CA too."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(host_name).configure_cert(server_context)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=server_context)
    server.expect_request(path).respond_with_data("ok")
    server.start()
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    def trusting_the_ca(timeout=None):
        return httpx.AsyncClient(
            timeout=5, follow_redirects=False, trust_env=False, verify=client_context
        )

    monkeypatch.setattr(webhook, "_client", trusting_the_ca)
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if host == host_name:
            return real("127.0.0.1", *args, **kwargs)
        ipaddress.ip_address(host)  # connecting to an address: no lookup of a name
        return real(host, *args, **kwargs)

    monkeypatch.setattr(network.socket, "getaddrinfo", resolve)
    try:
        yield server
    finally:
        server.clear()
        server.stop()

"""The security headers on every answer: Content-Security-Policy, HSTS and the others.

One fixed policy for the whole site and no nonce: the public pages are snapshots served as the
same bytes to every visitor (statuspage/public/snapshots/), where a nonce would be shared and so
worthless, so they carry no inline script or style at all; neither does the admin, whose
extra styles and scripts are static files. The same headers are added in three places that
share no code path: the outermost middleware (every response Django makes, snapshots and
error pages included), the WSGI fast path (statuspage/wsgi.py), and nginx for the files it
serves itself (deploy/nginx/beacon.conf, kept equal to this by a test).
"""

from collections.abc import Callable
from wsgiref.types import WSGIEnvironment

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

# Everything comes from this origin: no CDN, no inline code, no frames, no plugins. data:
# images are the favicon and the admin's and Swagger UI's small icons.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "manifest-src 'self'",
        # The browser-push service worker, /sw.js (incidents/push_views.py).
        "worker-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    ]
)
# Powerful features Beacon never asks for. Passkeys (publickey-credentials-*) keep their
# default, this origin only.
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
NAMES = frozenset(
    {
        "Content-Security-Policy",
        "X-Content-Type-Options",
        "X-Frame-Options",
        "Referrer-Policy",
        "Cross-Origin-Opener-Policy",
        "Permissions-Policy",
        "Strict-Transport-Security",
    }
)


def security_headers(*, secure: bool) -> list[tuple[str, str]]:
    """The headers for an answer to a request made over HTTPS (`secure`) or not.

    HSTS only over HTTPS, as browsers ignore it on plain HTTP (RFC 6797, 8.1).
    """
    headers = [
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", settings.X_FRAME_OPTIONS),
        ("Referrer-Policy", settings.SECURE_REFERRER_POLICY),
        ("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY),
        ("Permissions-Policy", PERMISSIONS_POLICY),
    ]
    if secure and settings.SECURE_HSTS_SECONDS:
        headers.append(("Strict-Transport-Security", strict_transport_security()))
    return headers


def strict_transport_security() -> str:
    value = f"max-age={settings.SECURE_HSTS_SECONDS}"
    if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
        value += "; includeSubDomains"
    if settings.SECURE_HSTS_PRELOAD:
        value += "; preload"
    return value


def is_secure(environ: WSGIEnvironment) -> bool:
    """Whether a WSGI request came over HTTPS, as Django's request.is_secure() decides."""
    if settings.SECURE_PROXY_SSL_HEADER:
        header, secure_value = settings.SECURE_PROXY_SSL_HEADER
        sent: str | None = environ.get(header)
        if sent is not None:
            return sent.split(",", 1)[0].strip() == secure_value
    return environ.get("wsgi.url_scheme") == "https"


def must_redirect_to_https(environ: WSGIEnvironment) -> bool:
    """A plain-HTTP request that Django's SecurityMiddleware will redirect to HTTPS: the
    snapshot paths, which run before it, leave it to Django."""
    return settings.SECURE_SSL_REDIRECT and not is_secure(environ)


class SecurityHeadersMiddleware:
    """Outermost middleware: the headers on every response, whoever made it.

    A header the response has already (Django's SecurityMiddleware sets some of the same from
    the same settings) is kept as it is.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        for name, value in security_headers(secure=request.is_secure()):
            if name not in response:
                response[name] = value
        return response

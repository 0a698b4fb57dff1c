"""gunicorn's settings for Beacon: `gunicorn -c python:statuspage.gunicorn_conf statuspage.wsgi`.

The access log names each request's id (the X-Request-ID Beacon answers with) and never
holds an alert integration's secret URL: the logger masks `/integrations/<kind>/<token>/`
in every line it writes, access and error alike, even for requests that never reach Django
(whose own records are masked by statuspage/lib/request_log.py). Lines of `/reports/` name
neither the client's address nor its user agent.
"""

import logging

from gunicorn.glogging import Logger

from statuspage.lib.languages import split_prefix
from statuspage.lib.request_log import mask, mask_record

REPORTS_PATH = "/reports"
# The access log's atoms that say who sent a request: address and user agent.
ANONYMOUS = {"h", "a"}
HEADERS_WHO = {"{user-agent}i", "{x-forwarded-for}i", "{x-real-ip}i", "{forwarded}i"}

accesslog = "-"
access_log_format = (
    '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" request_id=%({x-request-id}o)s'
)


class _MaskRecords(logging.Filter):
    def filter(self, record):
        mask_record(record)
        return True


class MaskingLogger(Logger):
    """gunicorn's logger, with secret URLs masked in the access atoms and error lines."""

    def setup(self, cfg):
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, _MaskRecords) for f in log.filters):
                log.addFilter(_MaskRecords())

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        # Under a language's prefix too (/de/reports/).
        if split_prefix(str(atoms.get("U", "")))[1].startswith(REPORTS_PATH):
            # Visitors' problem reports keep nobody's address or browser (docs/reports.md).
            atoms.update({key: "-" for key in atoms if key in ANONYMOUS or key in HEADERS_WHO})
        return {
            key: mask(value) if isinstance(value, str) else value for key, value in atoms.items()
        }


logger_class = MaskingLogger

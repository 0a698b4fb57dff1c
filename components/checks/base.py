"""The shape every check kind has: what it needs from a HealthCheck, and how it runs."""

from abc import ABC, abstractmethod

import httpx

from components.checks.outcome import Outcome
from components.models import HealthCheck


class CheckKindRunner(ABC):
    """One class per kind (components/checks/<kind>.py), registered in KINDS.

    `required` names the HealthCheck fields the kind cannot run without; `validate` may add
    rules of its own. `run` answers an Outcome or raises: the runner turns timeouts and
    exceptions into a down Outcome, and applies the latency threshold.
    """

    required: tuple[str, ...] = ()
    # Heartbeats are pushed to Beacon, not polled: they run in one place only.
    polled = True

    def validate(self, check: HealthCheck) -> dict[str, str]:
        return {
            field: "This check kind needs it."
            for field in self.required
            if getattr(check, field) in ("", None, [], {})
        }

    @abstractmethod
    async def run(self, check: HealthCheck, client: httpx.AsyncClient) -> Outcome:
        """What the check finds now."""

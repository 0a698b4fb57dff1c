"""What one run of a check found, whatever its kind."""

from dataclasses import dataclass
from datetime import datetime

from components.models import Verdict

ERROR_LENGTH = 500


@dataclass(frozen=True)
class Outcome:
    verdict: str
    latency_ms: float | None = None
    status_code: int | None = None
    error: str = ""
    # When the run started: its result's time, whenever the batch it ran in was recorded.
    started_at: datetime | None = None

    @classmethod
    def up(cls, *, latency_ms: float | None = None, status_code: int | None = None) -> "Outcome":
        return cls(Verdict.UP, latency_ms, status_code)

    @classmethod
    def degraded(
        cls, error: str, *, latency_ms: float | None = None, status_code: int | None = None
    ) -> "Outcome":
        return cls(Verdict.DEGRADED, latency_ms, status_code, error[:ERROR_LENGTH])

    @classmethod
    def down(
        cls, error: str, *, latency_ms: float | None = None, status_code: int | None = None
    ) -> "Outcome":
        return cls(Verdict.DOWN, latency_ms, status_code, error[:ERROR_LENGTH])

    def describe(self) -> str:
        """One line for the status history and staff: what failed, with its figures."""
        parts = [self.error or str(self.verdict)]
        if self.status_code is not None:
            parts.append(f"HTTP {self.status_code}")
        if self.latency_ms is not None:
            parts.append(f"{self.latency_ms:.0f} ms")
        return " · ".join(parts)

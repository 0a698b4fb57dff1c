"""Recurring maintenance: the rules (recurrence) and the writes (services)."""

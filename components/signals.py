"""What the components layer tells the layers above it, without importing them.

`status_changed` is sent inside the transaction that recorded a ComponentStatusChange whose
caller asked for subscribers to hear of it (`component_set_status(notify=True)`); the
incidents app connects the receiver that writes the notification event in that same
transaction (incidents/apps.py), so a change that rolls back is never announced.
"""

from django.dispatch import Signal

status_changed = Signal()  # sent with change=<ComponentStatusChange>

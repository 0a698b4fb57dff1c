"""The public surface: every output visitors and their tools read, rendered once per change.

Pages, incident pages and history (views), feeds and the calendar, badges and embed.js, the
public JSON API v2, /metrics, the snapshot store that serves them all as bytes, and the static
export. It reads incidents and components; nothing below imports it.
"""

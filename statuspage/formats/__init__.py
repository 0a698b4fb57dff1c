"""Beacon's own named date, time and number formats per locale (FORMAT_MODULE_PATH): read
with statuspage.lib.local_format; Django's own formats for each locale stay as they are."""

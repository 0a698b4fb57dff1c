"""Staff sign-in: the password, then a second factor (docs/security.md).

The admin site (site.py) lets a session in only once it has passed its second factor; the
pages here take a signed-in staff member through that step, enrolment and managing factors.
"""

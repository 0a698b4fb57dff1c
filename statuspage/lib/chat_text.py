"""Text as chat services read it literally: each has its own control characters.

Component names, incident text and page names are written by staff, but they reach channels
other people own: a name like `<!channel>` must not ping a whole Slack workspace, nor
`[Sign in](https://evil.example)` become a disguised link in a Teams card.
"""

import re

# Chat services ping a whole channel for these words; a zero-width space after the @ keeps
# them readable and silent.
MASS_MENTIONS = re.compile(r"@(?=(?:channel|here|everyone)\b)", re.IGNORECASE)


def without_mass_mentions(text: str) -> str:
    return MASS_MENTIONS.sub("@\u200b", text)


def slack_escaped(text: str) -> str:
    """Text as Slack reads it literally: `<`, `>` and `&` are its control characters (a name
    like `<!channel>` would ping everyone, `<https://evil|Sign in>` would be a disguised
    link), escaped as Slack documents; mass mentions are broken up for Slack-compatible
    receivers (Discord, Mattermost) that read them without brackets."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return without_mass_mentions(escaped)


# The Markdown subset Adaptive Cards render in a TextBlock (bold, italics, links, lists).
_CARD_MARKDOWN = re.compile(r"([\\*_\[\]()`~#>+-])")


def adaptive_card_escaped(text: str) -> str:
    """Text as a Teams Adaptive Card shows it literally: its Markdown characters escaped
    with a backslash, and `{{` (the card's DATE()/TIME() functions) broken up."""
    escaped = _CARD_MARKDOWN.sub(r"\\\1", text)
    return without_mass_mentions(escaped.replace("{{", "{\u200b{"))

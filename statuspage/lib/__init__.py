"""The leaf: model-free helpers every layer may use, which import nothing else of Beacon's.

ids, text, markdown, rate limits, request bodies and request ids, telling a database outage
apart, the outbound address guard (network) and the "public output changed" signal.
"""

"""Safety.

Secrets kept out of every output, personal data masked, outbound HTTP bounded, webhooks signed, private files,
CSV cells that never become formulas.
"""

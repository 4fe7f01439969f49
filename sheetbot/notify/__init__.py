"""Notifications: the morning summary and alerts, through Slack, e-mail and signed webhooks."""

"""The morning and its governance.

Metrics, alerts and escalation, the dashboard, the summary, feedback, approval-gated actions, the audit
export.
"""

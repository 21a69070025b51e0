"""Jinja templates for dataset cards (rendered by scas_hub.publish.card)."""

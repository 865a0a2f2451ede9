"""Payments service: merchants, payment intents, refunds, disputes, webhooks, settlement."""

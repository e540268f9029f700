"""Accounts: registration, login and roles, over the identity provider's own API."""

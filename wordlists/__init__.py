"""Shipped sensitive-term wordlists (data package; see SCHEMA.md)."""

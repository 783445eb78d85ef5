"""Notifications: who hears of a decision (the RACI matrix), derived after the engine decided."""

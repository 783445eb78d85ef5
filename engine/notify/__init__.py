"""Notifications: who hears of a decision and how the message reaches them.

A pipeline after the engine, in small stages as Alertmanager's notify pipeline: the
engine only emits decisions; ``route`` (the RACI matrix, and an escalation level's
``call``) and ``mute`` (shadow decisions) turn them into outbox entries stored in the
decision's transaction; ``retract`` cancels or follows up when a decision is retracted;
after the commit the ``worker`` claims due entries, ``group`` bundles them per recipient,
``deliver`` sends (SMTP, webhook, Apprise) and ``record`` stores the outcome and the
retry schedule. Nothing here imports Flask.
"""

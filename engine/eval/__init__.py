"""Evaluation: the compiled rules matched by durable_rules, clocks on service calendars,
decisions in event time, Rule actions, derivation traces and the engine's state."""

"""Northstar's domain core: configuration, database, accounts, rules, plans, events, queue, reporting."""

"""Campaigns: steps, enrollments, the scheduler tick, the message ledger and delivery."""

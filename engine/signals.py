"""Upward notices between layers: lower layers send, higher layers connect (DESIGN.md section 2).

Every signal is sent with the live `session` so receivers join the sender's transaction:
whatever they write commits or rolls back with it.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: A survey response was completed. kwargs: session, response_id, account_id, answers, choices,
#: channel, now; from the `rules` job also deferred=True, as_of (the response's completion stamp)
#: and stored_facts (the account's facts as `load_facts` read them for the batch, or None).
response_completed = _signals.signal("response-completed")

#: The rules are about to decide for many accounts in one transaction (the `rules` job's batch):
#: receivers may read what those decisions will need in one statement. kwargs: session,
#: account_ids.
decisions_starting = _signals.signal("decisions-starting")

#: engine.plans applied a decision. kwargs: session, account_id, plan_id, actions, now. plan_id is
#: None without a plan, and for a plan not written yet (inside `engine.db.deferred_flushes`).
decision_applied = _signals.signal("decision-applied")

#: A milestone was achieved. kwargs: session, milestone_id, plan_id, account_id, now.
milestone_achieved = _signals.signal("milestone-achieved")

#: A milestone moved to behind or missed. kwargs: session, milestone_id, milestone_key, status,
#: plan_id, account_id, now.
milestone_slipped = _signals.signal("milestone-slipped")

#: A key result's current value changed. kwargs: session, key_result_id, plan_id, account_id,
#: previous, current, now.
key_result_moved = _signals.signal("key-result-moved")

#: Someone changed a plan (a KR value, a milestone, a comment, a review). kwargs: session, plan_id,
#: account_id, revision_id, actor, channel, now. Campaigns notify the other side.
plan_updated = _signals.signal("plan-updated")

#: A plan refresh achieved milestones on these accounts (after one milestone_achieved per milestone,
#: sent with batched=True). kwargs: session, account_ids, now.
milestones_achieved_batch = _signals.signal("milestones-achieved-batch")

"""What the bot says when a custom action cannot run (the action server is down, hung or failing): one plain
sentence per action at the ``static`` degradation level, said by the Rasa server itself
(:mod:`app.channels.degraded`). Standard library only, so both environments read the same words (the
end-to-end tests compare them).

They offer no person: asking for one needs the action server too (it opens the ticket).
"""

from __future__ import annotations

LEVEL = "static"  # what the bot can still do without the action server: rules and these replies
RETRY = "Please try again in a few minutes."
REPLIES = {
    "action_answer_knowledge": f"I can't look that up right now. {RETRY}",
    "action_track_order": f"I can't reach our order system right now. {RETRY}",
    "action_request_refund": f"I can't reach our refund system right now, so no refund was requested. {RETRY}",
    "action_handoff": f"I can't reach our support team's system right now. {RETRY}",
    "action_complaint": f"I'm sorry about that. I can't reach our support team's system right now. {RETRY}",
    "action_report_problem": f"I'm sorry about that. I can't open a ticket for it right now. {RETRY}",
    "action_cancel_order": f"I can't reach our order system right now, so I can't pass a cancellation on. {RETRY}",
    "action_change_address": f"I can't reach our order system right now, so I can't change an address. {RETRY}",
    "action_forward_to_agent": "I couldn't pass your message on to our support team just now. "
    "Please send it again in a few minutes.",
    "action_default_ask_affirmation": "Sorry, I didn't quite get that. Could you rephrase it?",
    "action_default_fallback": "Sorry, I didn't quite get that. Could you rephrase it?",
}
DEFAULT_REPLY = f"I can't do that right now. {RETRY}"

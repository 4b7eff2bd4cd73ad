"""Questions and requests: whether a message asks *about* something or asks the bot to *do* it, or names only a
subject.

"How long do refunds take?" and "can I still cancel?" are questions the help articles answer; "refund
ORD-20101", "cancel my order please" and "can you cancel ORD-20031?" are requests a skill or a person carries
out. The skills that serve both (refunds, cancellations, complaints, problem reports) ask these two. "help with
payment??" and "I have a question about my bill" say neither: they name a subject, not what about it, and the
router asks what was meant (:func:`is_vague`). "Is there a discount for teachers?" asks whether something is
offered at all (:func:`asks_whether_offered`).
"""

from __future__ import annotations

import re

#: A question mark at the end, or a question word or auxiliary first (the one reader of questions: the skills,
#: the context policy and the router's turn facts all ask it).
QUESTION = re.compile(
    r"\?\s*$|^\s*(how|what|when|where|which|who|why|can|could|do|does|did|is|are|will|would|should|may|must)\b",
    re.IGNORECASE,
)
# "can you ...", "could you ...", "please ...": asking the bot to act, even in the form of a question
POLITE_REQUEST = re.compile(
    r"^\s*(?:(?:hi|hello|hey)\W+)?(?:(?:can|could|would|will)\s+(?:you|u)\b(?!\s+(?:tell|explain))|please\b)"
    r"|\b(?:please|pls|plz)\b",
    re.IGNORECASE,
)

# "help with payment??", "I have a question about my bill", "problem with the app": help, a question or a problem
# with a subject of at most three words, and nothing else
VAGUE = re.compile(
    r"^\W*(?:(?:hi|hello|hey)\W+)?(?:i\s+(?:need|want|would\s+like|have|got)\s+)?(?:some\s+|a\s+|an\s+)?"
    r"(?:help|question|questions|issue|issues|problem|problems|query|trouble)\s+"
    r"(?:with|about|regarding|re|on|concerning)\s+(?:my\s+|the\s+|a\s+|an\s+|your\s+)?\w+(?:\s+\w+){0,2}\W*$",
    re.IGNORECASE,
)

# "meter thing??", "that thing with the contract from the letter": a subject named only as a "thing" (a word or two
# before it, at most five words of "with/about/from ..." after it), nothing asked or said about it
VAGUE_THING = re.compile(
    r"^\W*(?:(?:hmm+|so|um+|uh+|ok|okay|and|also|about|re)\W+){0,3}(?:(?:the|that|this|my|your|a|an)\s+)?"
    r"(?!sure\b|one\s+more\b)(?:[\w']+\s+){0,2}(?:thing|stuff)"
    r"(?:[\s,]+(?:with|about|from|for|on|in|regarding)(?:\s+[\w']+){1,5})?\W*$",
    re.IGNORECASE,
)

# "is there a discount for teachers?", "do you have a social tariff for pensioners?", "ok, do you offer gift
# wrapping?": whether the shop offers something at all (a few words of filler first)
OFFERED = re.compile(
    r"^\W*(?:(?:ok|okay|no|yes|hi|hello|hey|so|and|also|thanks)\W+){0,2}"
    r"(?:is|are)\s+there\s+(?:a|an|any)\b"
    r"|^\W*(?:(?:ok|okay|no|yes|hi|hello|hey|so|and|also|thanks)\W+){0,2}"
    r"(?:do|does)\s+(?:you|u|you\s+guys|[a-z]+)\s+"
    r"(?:(?:have|do)\s+(?:a|an|any(?!\s+idea))\b|(?:offer|sell|provide|run)\b)",
    re.IGNORECASE,
)


def is_question(text: str) -> bool:
    """ "How long does a refund take?" asks about refunds; "I want my money back" asks for one."""
    return bool(QUESTION.search(text or ""))


def is_request(text: str) -> bool:
    """The user asks the bot to do something: a statement ("cancel my order"), or a polite request in the
    form of a question ("can you cancel ORD-20031?"); "can I still cancel?" is a question."""
    return not is_question(text) or bool(POLITE_REQUEST.search(text or ""))


def asks_whether_offered(text: str) -> bool:
    """ "Is there a discount for teachers?", "do you have an Android app?": the question is whether a thing exists
    (an offer, a service, a product), so an answer must name that thing; "is there a fee to return it?" is one
    too, "how do I get a discount?" is not."""
    return bool(OFFERED.search(text or ""))


def is_vague(text: str) -> bool:
    """The message names a subject but not what about it: "help with payment??", "question about my order",
    "meter thing??"."""
    return bool(VAGUE.match(text or "") or VAGUE_THING.match(text or ""))

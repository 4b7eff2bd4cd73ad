"""Conversation analytics, computed on read from Rasa's tracker store and our stores (no tables of its own).

The metrics are pure functions over pandas DataFrames (unit-tested on hand-built frames), one job a module;
each definition (the analytics contract, also in docs/analytics.md) is in the docstring of the module that
computes it:

- :mod:`app.analytics.frames`: the inputs (tracker ``events``, ``tickets``, ``llm_calls``) as frames;
- :mod:`app.analytics.sessions`: events -> user turns and conversations (conversation, user turn,
  fallback turn, latency);
- :mod:`app.analytics.handlers`: which handler a turn had (the handler vocabulary, in one place);
- :mod:`app.analytics.attribution`: tickets and LLM calls matched to conversations and turns (escalated
  conversation, cost and tokens per conversation);
- :mod:`app.analytics.kpis`: the KPIs, daily series and tables of one tenant and date range, and
  :func:`~app.analytics.kpis.compute`, which runs them all (answer tier);
- :mod:`app.analytics.stats`: percentiles and rates; :mod:`app.analytics.formatting`: figures as the page
  shows them;
- :mod:`app.analytics.loaders`: thin SQLAlchemy loaders for the tracker's ``events`` table, ``tickets`` and
  ``llm_calls``, one tenant and date range at a time;
- :mod:`app.analytics.results`: the evaluation results the DVC pipeline writes (NLU, retrieval, cost).
"""

"""Conversation analytics: the turn records and the figures read from them.

- :mod:`app.analytics.turn_records`: one record per user turn, built from Rasa's tracker events joined with
  the action runs and LLM calls (the segmentation of turns and conversations, and the handler of each turn in
  the vocabulary of :mod:`app.orchestration.handlers`); :mod:`app.analytics.recorder`, the service that keeps
  them up to date;
- :mod:`app.analytics.kpis`: the figures of one tenant and date range from the records and the LLM calls
  they name (each definition, the analytics contract also in docs/analytics.md, in its docstring);
- :mod:`app.analytics.loaders`: thin SQLAlchemy loaders of those records and calls, one tenant and date range
  at a time;
- :mod:`app.analytics.stats`: percentiles and rates; :mod:`app.analytics.formatting`: figures as the pages
  show them;
- :mod:`app.analytics.results`: the evaluation results the DVC pipeline writes (NLU, retrieval, cost).
"""

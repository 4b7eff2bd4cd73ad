"""Conversation analytics, computed on read from Rasa's tracker store and our stores (no tables of its own).

- :mod:`app.analytics.metrics`: pure functions over pandas DataFrames (the metric definitions, unit-tested);
- :mod:`app.analytics.loaders`: thin SQLAlchemy loaders for the tracker's ``events`` table, ``tickets`` and
  ``llm_calls``, one tenant and date range at a time;
- :mod:`app.analytics.results`: the evaluation results the DVC pipeline writes (NLU, retrieval, cost).
"""

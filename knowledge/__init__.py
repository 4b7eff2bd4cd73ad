"""Switchboard knowledge layer: Markdown documents -> chunked, embedded index -> tenant-scoped answers.

Modules (import them directly; this package imports nothing heavy):

- ``knowledge.documents``: read ``sources.yml`` and the Markdown files it points to.
- ``knowledge.embeddings``: the local MiniLM embedding model and llama-index settings.
- ``knowledge.index``: build and atomically publish the on-disk vector index.
- ``knowledge.retrieval``: load an index, retrieve per tenant, answer extractively.
- ``knowledge.evaluation``: retrieval and "I don't know" metrics over a gold question set.
"""

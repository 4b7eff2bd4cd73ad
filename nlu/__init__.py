"""The Rasa project (domain, configs, data, test stories) and the NLU code around it.

Modules here are imported from both environments: keep this package free of heavy imports.
"""

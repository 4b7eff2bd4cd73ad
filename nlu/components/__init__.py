"""Rasa graph components of ours (loaded by Rasa in the Rasa environment: no torch, no pydantic 2).

Reference them in a config by module path, e.g. ``nlu.components.onnx_featurizer.OnnxSentenceFeaturizer``.
This package stays import-light: each component module imports Rasa itself, this file does not.
"""

"""Custom actions served by the action server (``python -m app.actions.server``).

rasa_sdk imports every module of this package and registers the ``Action`` subclasses it finds.
"""

"""Local stand-ins for external systems, run as HTTP services by the launcher (``app/stack.py``)."""

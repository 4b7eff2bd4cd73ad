"""Input channels loaded by the Rasa server (Python 3.10 env: import only Rasa and the stdlib here)."""

"""Switchboard runtime: everything that runs in production.

Kept import-light: Rasa (Python 3.10, pydantic 1) imports ``app.channels`` from this package,
so nothing here may import pydantic 2 code at package import time.
"""

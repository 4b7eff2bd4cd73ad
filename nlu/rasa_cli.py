"""Run the ``rasa`` CLI in the Rasa environment (Python 3.10) with our start-up fixes.

Importing ``skops.io`` before Rasa loads TensorFlow saves 4-6 s per process (measured on these machines),
so every Rasa command Switchboard runs goes through ``python -m nlu.rasa_cli <args>``.
"""

import skops.io  # noqa: F401  (import order is the point: before TensorFlow)
from rasa.__main__ import main

if __name__ == "__main__":
    main()

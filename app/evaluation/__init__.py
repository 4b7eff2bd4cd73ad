"""Bot-level evaluation: conversations played through the served stack, scored from the turn records."""

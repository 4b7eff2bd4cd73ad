"""One client class per external system (CRM, ticketing), each configured from settings."""

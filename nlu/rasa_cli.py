"""Run the ``rasa`` CLI in the Rasa environment (Python 3.10) with our start-up fixes.

Importing ``skops.io`` before Rasa loads TensorFlow saves 4-6 s per process (measured on these machines),
so every Rasa command Switchboard runs goes through ``python -m nlu.rasa_cli <args>``.

Rasa checks every action server response against its response schema with ``jsonschema.validate``, which first
checks the schema itself against JSON Schema's meta-schema, on every call: about 22 ms of a turn's work for each
custom action it runs (a knowledge turn of a new conversation runs two), against 0.3 ms for the response check
itself (measured on these machines; py-spy put 55 % of Rasa's busy time in tier-0 knowledge turns there).
:func:`check_action_responses_with_one_validator` builds that validator once for the responses that pass; one that
fails goes on to Rasa's own check, which raises Rasa's own error.
"""

import skops.io  # noqa: F401  (import order is the point: before TensorFlow)
from rasa.__main__ import main


def check_action_responses_with_one_validator() -> None:
    """Let ``RemoteAction._validate_action_result`` accept a valid response with a validator built once; an
    invalid one is left to Rasa's own method (its error and message, unchanged)."""
    from jsonschema import validators
    from rasa.core.actions.action import RemoteAction

    schema = RemoteAction.action_response_format_spec()
    kind = validators.validator_for(schema)
    kind.check_schema(schema)  # once, here, instead of on every response
    validator = kind(schema)
    rasas_own = RemoteAction._validate_action_result

    def _validate_action_result(self: RemoteAction, result: dict) -> bool:
        return validator.is_valid(result) or rasas_own(self, result)

    RemoteAction._validate_action_result = _validate_action_result


if __name__ == "__main__":
    check_action_responses_with_one_validator()
    main()

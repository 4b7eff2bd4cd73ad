"""Run the ``rasa`` CLI in the Rasa environment (Python 3.10) with our start-up fixes.

Importing ``skops.io`` before Rasa loads TensorFlow saves 4-6 s per process (measured on these machines),
so every Rasa command Switchboard runs goes through ``python -m nlu.rasa_cli <args>``.

Rasa checks every action server response against its response schema with ``jsonschema.validate``, which first
checks the schema itself against JSON Schema's meta-schema, on every call: about 22 ms of a turn's work for each
custom action it runs (a knowledge turn of a new conversation runs two), against 0.3 ms for the response check
itself (measured on these machines; py-spy put 55 % of Rasa's busy time in tier-0 knowledge turns there).
:func:`check_action_responses_with_one_validator` builds that validator once: the same checks, the same error
(jsonschema's best match, with Rasa's message), only the schema's own check is no longer repeated.
"""

import skops.io  # noqa: F401  (import order is the point: before TensorFlow)
from rasa.__main__ import main


def check_action_responses_with_one_validator() -> None:
    """Replace ``RemoteAction._validate_action_result`` with one that validates against a validator built once."""
    from jsonschema import validators
    from jsonschema.exceptions import best_match
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.constants import DOCS_BASE_URL

    schema = RemoteAction.action_response_format_spec()
    kind = validators.validator_for(schema)
    kind.check_schema(schema)  # once, here, instead of on every response
    validator = kind(schema)

    def _validate_action_result(self: RemoteAction, result: dict) -> bool:
        error = best_match(validator.iter_errors(result))  # what jsonschema.validate raises
        if error is None:
            return True
        error.message += (  # Rasa's own wording (rasa/core/actions/action.py)
            f". Failed to validate Action server response from API, "
            f"make sure your response from the Action endpoint is valid. "
            f"For more information about the format visit "
            f"{DOCS_BASE_URL}/custom-actions"
        )
        raise error

    RemoteAction._validate_action_result = _validate_action_result


if __name__ == "__main__":
    check_action_responses_with_one_validator()
    main()

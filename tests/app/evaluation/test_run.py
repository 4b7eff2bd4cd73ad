"""The evaluation's own stack: its ports, and a start that finds one of them taken."""

from __future__ import annotations

import pytest

from app.evaluation.run import PORTS, EvaluationStack, stack_settings
from app.settings import Settings
from app.supervisor import StackError

TAKEN = "actions exited with code 1:\n  sock.bind(location)\nOSError: [Errno 98] Address already in use"


def settings(tmp_path) -> Settings:
    base = Settings(state_dir=tmp_path, crm_port=0)
    return stack_settings(
        base, tmp_path / "m.tar.gz", tmp_path / "idx", tmp_path / "p.yaml", tmp_path / "state"
    )


def ports(stack) -> tuple[int, ...]:
    return tuple(getattr(stack.settings, name) for name in PORTS)


def test_a_port_taken_before_its_service_binds_it_starts_the_stack_again_on_other_ports(tmp_path):
    tried = []

    def start(stack):
        tried.append(ports(stack))
        if len(tried) < 3:
            raise StackError(TAKEN)

    with EvaluationStack(settings(tmp_path), start) as evaluation:
        assert len(tried) == 3 and len(set(tried)) == 3
        assert ports(evaluation.stack) == tried[-1] and len(set(tried[-1])) == len(PORTS)
        evaluation.stack.stop = lambda: None  # nothing was started


def test_other_start_failures_and_a_third_taken_port_are_raised(tmp_path):
    calls = []

    def broken(stack):
        calls.append(1)
        raise StackError("rasa exited with code 1:\nCould not load model")

    with pytest.raises(StackError, match="Could not load model"):
        EvaluationStack(settings(tmp_path), broken).__enter__()
    assert len(calls) == 1

    def always_taken(stack):
        calls.append(1)
        raise StackError(TAKEN)

    with pytest.raises(StackError, match="Address already in use"):
        EvaluationStack(settings(tmp_path), always_taken).__enter__()
    assert len(calls) == 4

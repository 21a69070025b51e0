"""Every subcommand's config-backed flags say what their config field says: help, default, choices.

The expectations are generated from the config dataclasses (not a frozen copy of `--help`), so a
default or help text changed in a config shows up in the CLI, and a flag that drifts from its field
fails here.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys

import pytest

from scas_hub.cli import build_parser
from scas_hub.cli.common import LaunchConfig
from scas_hub.cli.options import field_default, flag_of, help_of, show_default
from scas_hub.evaluate.config import DecodingConfig, QuestionsConfig
from scas_hub.generate.config import GenerateConfig, RetryPolicy, RoutingConfig
from scas_hub.publish.config import PublishConfig
from scas_hub.score.config import ScoringConfig
from scas_hub.select import SelectionConfig
from scas_hub.student.config import StudentConfig
from scas_hub.train.config import TrainConfig


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _config_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if hasattr(a, "config_field")]


def _field(config: type, name: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(config) if f.name == name)


# which configs' flags each command takes (the fields themselves come from the configs)
TAKES = {
    "curate": {SelectionConfig, PublishConfig, ScoringConfig, StudentConfig, LaunchConfig},
    "select": {SelectionConfig, PublishConfig},
    "rounds": {SelectionConfig, TrainConfig, DecodingConfig, ScoringConfig, StudentConfig, LaunchConfig},
    "train": {TrainConfig, StudentConfig, LaunchConfig},
    "evaluate": {QuestionsConfig, DecodingConfig, StudentConfig},
    "ablate": {QuestionsConfig, TrainConfig, DecodingConfig, StudentConfig},
    "generate": {GenerateConfig, RetryPolicy, RoutingConfig},
    "push": {PublishConfig},
}

# flags whose help a command words its own way: what the option does there differs from the field's
# general help (e.g. the chat template is saved with checkpoints in training, hashed in evaluation)
OWN_WORDS = {
    "rounds": {"batch_size", "backend", "token_budget", "truncate", "name", "revision", "dtype", "device"}
    | {"chat_template", "num_processes"},
    "train": {"revision", "chat_template", "num_processes"},
    "ablate": {"chat_template"},
    "evaluate": {"chat_template"},
}


@pytest.mark.parametrize("command", sorted(TAKES))
def test_flags_follow_their_config_fields(command):
    parser = _subparsers()[command]
    actions = _config_actions(parser)
    assert {a.config_field[0] for a in actions} == TAKES[command]
    for action in actions:
        config, name, unset = action.config_field
        f = _field(config, name)
        # unset flags default to None and the config fills in its own default, which their help states
        switch = isinstance(action, argparse._StoreTrueAction)  # off unless given, as the field's False
        assert action.default == (None if unset and not switch else field_default(f)), (command, name)
        if unset and "{default}" in f.metadata["help"]:
            assert f"(default: {show_default(field_default(f))}" in action.help, (command, name)
        if name not in OWN_WORDS.get(command, set()):
            assert action.help == help_of(f), (command, name)
            assert action.choices == f.metadata.get("choices"), (command, name)
        assert flag_of(f) in action.option_strings or name in ("seed", "batch_size"), (command, name)


@pytest.mark.parametrize("command", ["curate", "select", "rounds"])
def test_every_selection_field_is_a_flag(command):
    names = {a.config_field[1] for a in _config_actions(_subparsers()[command]) if a.config_field[0] is SelectionConfig}
    assert names == {f.name for f in dataclasses.fields(SelectionConfig)}
    args = build_parser().parse_args([command, "--candidates", "x", "--out", "y"] if command == "select" else [command])
    # the parsed defaults make the config's own defaults
    from scas_hub.cli.common import selection_kwargs

    assert SelectionConfig(**selection_kwargs(args)) == SelectionConfig()


@pytest.mark.parametrize("command", ["evaluate", "ablate", "rounds"])
def test_the_question_flags_make_the_questions_config(command):
    from scas_hub.cli.common import questions_config
    from scas_hub.cli.rounds import eval_questions

    parse = build_parser().parse_args
    student = ["--student", "s"]
    if command == "rounds":  # the loop spells them --eval-limit, --eval-seed
        assert eval_questions(parse([command])) is None
        build, limit, seed = eval_questions, "--eval-limit", "--eval-seed"
    else:
        build, limit, seed = questions_config, "--limit", "--sample-seed"
    assert build(parse([command, *student, "--eval", "e"])) == QuestionsConfig("e")
    args = parse(
        [command, *student, "--eval", "e", "--eval-subset", "x", "--eval-revision", "v1", limit, "5", seed, "7"]
    )
    assert build(args) == QuestionsConfig("e", subset="x", revision="v1", limit=5, sample_seed=7)


def test_unset_training_flags_build_the_reference_recipe():
    from scas_hub.cli.common import train_config

    args = build_parser().parse_args(["train", "--dataset", "d"])
    assert train_config(args) == TrainConfig()
    args = build_parser().parse_args(
        ["train", "--dataset", "d", "--learning-rate", "2e-5", "--bf16", "--effective-batch", "4", "--seed", "7"]
    )
    config = train_config(args)
    assert (config.learning_rate, config.bf16, config.effective_batch_size, config.seed) == (2e-5, True, 4, 7)


def test_help_shows_the_config_defaults():
    out = subprocess.run(
        [sys.executable, "-m", "scas_hub", "train", "--help"],
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": ""},
        check=True,
    ).stdout
    assert f"peak learning rate (default: {show_default(TrainConfig().learning_rate)})" in out
    assert f"passes over the dataset (default: {show_default(TrainConfig().epochs)};" in out
    out = subprocess.run(
        [sys.executable, "-m", "scas_hub", "select", "--help"],
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": ""},
        check=True,
    ).stdout
    assert f"(default: {SelectionConfig().groups})" in out and "--lambda LAM" in out


def test_a_flag_a_command_would_ignore_is_not_offered(capsys):
    """`ablate` scores, trains and evaluates with the student's own template: `--chat-template` there
    was accepted and silently ignored; now argparse refuses it (exit 2) and `--help` does not list it."""
    parser = build_parser()
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["ablate", "--eval", "demo", "--chat-template", "t.jinja"])
    assert exit_info.value.code == 2 and "--chat-template" in capsys.readouterr().err
    assert parser.parse_args(["train", "--dataset", "d", "--chat-template", "t.jinja"]).chat_template == "t.jinja"
    assert parser.parse_args(["rounds", "--chat-template", "t.jinja"]).chat_template == "t.jinja"

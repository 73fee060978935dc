"""Building the switch policy from command-line options, and reading the server's."""

from __future__ import annotations

from dataclasses import replace

import pytest

from client.policy import (
    DEFAULT_COOLING_OFF,
    DEFAULT_GRACE,
    Notice,
    Policy,
    PolicyOptions,
    build_policy,
    email_notice,
    parse_contact,
    webhook_notice,
)
from vault.errors import ConfigError, ProofError


def test_arming_needs_an_interval_and_has_defaults() -> None:
    with pytest.raises(ConfigError, match="interval"):
        build_policy(PolicyOptions(), None)
    policy, made = build_policy(PolicyOptions(every=86400), None)
    assert made == []
    assert policy.to_json() == {
        "interval": 86400,
        "grace": DEFAULT_GRACE,
        "reminders": [],
        "duress": "alert",
        "cooling_off": DEFAULT_COOLING_OFF,
        "remind": [],
        "alert": [],
        "publish": [],
    }
    assert DEFAULT_COOLING_OFF == 259200


def test_a_full_policy() -> None:
    options = PolicyOptions(
        every=7 * 86400,
        grace=3600,
        remind_before=(3600, 86400),
        duress="both",
        cooling_off=0,
        remind=(email_notice("me@example.org"),),
        alert=(email_notice("maria@example.org"), webhook_notice("https://desk.example/hook")),
        publish=(webhook_notice("https://wire.example/in"),),
    )
    policy, made = build_policy(options, None)
    value = policy.to_json()
    assert value["interval"] == 604800
    assert value["reminders"] == [86400, 3600]  # largest first
    assert value["duress"] == "both"
    assert value["cooling_off"] == 0
    assert value["remind"] == [{"email": "me@example.org"}]
    hooks = {(channel, n.webhook): n.secret for channel, n in made}
    assert set(hooks) == {
        ("alert", "https://desk.example/hook"),
        ("publish", "https://wire.example/in"),
    }
    assert all(secret is not None and len(secret) >= 32 for secret in hooks.values())
    assert value["alert"][1] == {
        "webhook": "https://desk.example/hook",
        "secret": hooks["alert", "https://desk.example/hook"],
    }
    assert Policy.from_json(value) == policy


def test_changing_keeps_what_is_not_given_and_webhook_secrets() -> None:
    current, _ = build_policy(
        PolicyOptions(
            every=86400,
            alert=(webhook_notice("https://desk.example/hook"),),
            publish=(email_notice("wire@example.org"),),
        ),
        None,
    )
    changed, made = build_policy(
        PolicyOptions(every=2 * 86400, alert=(webhook_notice("https://desk.example/hook"),)),
        current,
    )
    assert made == []  # the same URL keeps its secret
    assert changed.alert == current.alert
    assert changed.publish == current.publish
    assert changed.interval == 2 * 86400
    assert changed.grace == current.grace
    # Contacts given for a channel replace its list.
    replaced, made = build_policy(
        PolicyOptions(publish=(email_notice("other@example.org"),)), current
    )
    assert replaced.publish == (Notice(email="other@example.org"),)
    assert replaced.alert == current.alert


@pytest.mark.parametrize(
    "options",
    [
        PolicyOptions(every=0),
        PolicyOptions(every=3600, remind_before=(3600,)),
        PolicyOptions(every=3600, remind_before=tuple(range(60, 600, 60))),
        PolicyOptions(every=3600, duress="panic"),
    ],
)
def test_out_of_range_policies_are_refused(options: PolicyOptions) -> None:
    with pytest.raises(ConfigError):
        build_policy(options, None)


@pytest.mark.parametrize(
    "address", ["", "me", "me@", "@example.org", "me@example", "a b@example.org", "me@-x.org"]
)
def test_bad_email_addresses(address: str) -> None:
    with pytest.raises(ConfigError):
        email_notice(address)


@pytest.mark.parametrize(
    "url", ["", "ftp://x.example/", "https://", "https://u:p@x.example/", "https://x.example/#f"]
)
def test_bad_webhooks(url: str) -> None:
    with pytest.raises(ConfigError):
        webhook_notice(url)


@pytest.mark.parametrize(
    "value",
    [
        None,
        [],
        {"interval": "86400", "grace": 0, "reminders": [], "duress": "alert"},
        {"interval": 86400, "grace": -1, "reminders": [], "duress": "alert"},
        {"interval": 86400, "grace": 0, "reminders": [], "duress": "x"},
        {"interval": 86400, "grace": 0, "reminders": [], "duress": "alert", "alert": [{"sms": 1}]},
        {
            "interval": 86400,
            "grace": 0,
            "reminders": [],
            "duress": "alert",
            "alert": [{"webhook": "https://x.example", "secret": "short"}],
        },
    ],
)
def test_a_malformed_server_policy_is_a_proof_error(value: object) -> None:
    with pytest.raises(ProofError):
        Policy.from_json(value)


def test_webhooks_the_server_lists_without_secrets_are_sent_back_without() -> None:
    shown = {
        "interval": 86400,
        "grace": 0,
        "reminders": [],
        "duress": "alert",
        "cooling_off": 3600,
        "remind": [],
        "alert": [{"webhook": "https://desk.example/hook"}],
        "publish": [],
    }
    current = Policy.from_json(shown)
    assert current.alert == (Notice(webhook="https://desk.example/hook"),)
    changed, made = build_policy(PolicyOptions(every=3600 * 12), current)
    assert made == []
    assert changed.to_json()["alert"] == [{"webhook": "https://desk.example/hook"}]
    # Given again: its secret is unknown here, so it gets a new one, shown once.
    changed, made = build_policy(
        PolicyOptions(
            alert=(
                webhook_notice("https://desk.example/hook"),
                webhook_notice("https://b.example/"),
            )
        ),
        current,
    )
    assert [n.webhook for _, n in made] == ["https://desk.example/hook", "https://b.example/"]
    assert [c["secret"] for c in changed.to_json()["alert"]] == [n.secret for _, n in made]


def test_a_contact_named_after_a_pinned_card() -> None:
    plain = parse_contact("maria@example.org", "email")
    assert plain == Notice(email="maria@example.org")
    named = parse_contact("maria <maria@example.org>", "email")
    assert named.contact == "maria"
    assert named.email == "maria@example.org"
    hook = parse_contact(" desk <https://desk.example/hook> ", "webhook")
    assert (hook.contact, hook.webhook) == ("desk", "https://desk.example/hook")
    # Only the key and the name reach the server, never the local contact name.
    keyed = replace(named, age="age1examplerecipient", name="Ana Reporter")
    assert keyed.to_json() == {
        "age": "age1examplerecipient",
        "email": "maria@example.org",
        "name": "Ana Reporter",
    }
    assert keyed.shown() == "maria <maria@example.org>"
    with pytest.raises(ConfigError, match="invalid e-mail address"):
        parse_contact("maria <not an address>", "email")


def test_keys_and_names_round_trip_and_a_known_webhook_keeps_them() -> None:
    shown = {
        "interval": 86400,
        "grace": 0,
        "reminders": [],
        "duress": "alert",
        "cooling_off": 3600,
        "remind": [],
        "alert": [
            {"email": "maria@example.org", "age": "age1a", "name": "Ana"},
            {"webhook": "https://desk.example/hook", "age": "age1b", "name": "Ana"},
        ],
        "publish": [],
    }
    current = Policy.from_json(shown)
    assert current.to_json()["alert"] == shown["alert"]
    with pytest.raises(ProofError):
        Policy.from_json({**shown, "alert": [{"email": "m@example.org", "name": 7}]})
    # A webhook whose secret is known keeps it when given again with a key.
    known = Notice(webhook="https://desk.example/hook", secret="s" * 32)
    base, _ = build_policy(PolicyOptions(every=86400, alert=(known,)), None)
    again = replace(webhook_notice("https://desk.example/hook"), age="age1c", name="Ana")
    changed, made = build_policy(PolicyOptions(alert=(again,)), base)
    assert made == []
    assert changed.alert[0].to_json() == {
        "age": "age1c",
        "name": "Ana",
        "secret": "s" * 32,
        "webhook": "https://desk.example/hook",
    }

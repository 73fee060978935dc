"""``evault switch set|status|disarm|phrase`` and ``evault checkin``: the dead-man switch."""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Sequence
from dataclasses import replace

import click
from rich.table import Table

from client import contacts
from client import switch as service
from client.commands._common import open_client
from client.commands._naming import resolve
from client.commands._reveal import REVEAL_HELP, choose_for_arming, parse_item_choices
from client.context import Client
from client.durations import format_duration, parse_duration, shown_time
from client.identity import check_strength
from client.item_names import is_item_id
from client.policy import (
    DURESS_MODES,
    Notice,
    Policy,
    PolicyOptions,
    build_policy,
    parse_contact,
)
from client.ui import confirm, err, handle_errors, json_mode, out, print_json, shown
from vault.disclosure import Reveal
from vault.errors import ConfigError, VaultError

__all__ = ["COMMANDS"]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _iso(moment: datetime.datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Duration(click.ParamType[int]):
    name = "DURATION"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_duration(str(value))
        except ConfigError as exc:
            self.fail(f"{exc.message} ({exc.hint})", param, ctx)


DURATION = _Duration()


def _phrases(client: Client, *, ask_duress: bool = True) -> tuple[str, str | None]:
    """The web check-in phrase and the optional duress phrase: environment, or the terminal."""
    scripted = os.environ.get("EVAULT_CHECKIN_PHRASE")
    if scripted:
        check_strength(scripted)
        duress = os.environ.get("EVAULT_DURESS_PHRASE") or None
    else:
        phrase = client.prompt("Check-in phrase for the web page: ")
        check_strength(phrase)
        if client.prompt("Repeat the check-in phrase: ") != phrase:
            raise ConfigError("the two check-in phrases did not match; nothing was changed")
        scripted = phrase
        duress = None
        if ask_duress:
            duress = client.prompt("Duress phrase for the web page (empty for none): ") or None
            if duress is not None and client.prompt("Repeat the duress phrase: ") != duress:
                raise ConfigError("the two duress phrases did not match; nothing was changed")
    if duress is not None:
        check_strength(duress)
        if duress == scripted:
            raise ConfigError("the duress phrase must differ from the check-in phrase")
    return scripted, duress


def _options(
    every: int | None,
    grace: int | None,
    remind_before: Sequence[int],
    duress: str | None,
    cooling_off: int | None,
    contacts: dict[str, tuple[Sequence[str], Sequence[str]]],
) -> PolicyOptions:
    notices: dict[str, tuple[Notice, ...]] = {}
    for channel, (emails, hooks) in contacts.items():
        notices[channel] = (
            *(parse_contact(e, "email") for e in emails),
            *(parse_contact(h, "webhook") for h in hooks),
        )
    return PolicyOptions(
        every=every,
        grace=grace,
        remind_before=tuple(remind_before),
        duress=duress,
        cooling_off=cooling_off,
        remind=notices["remind"],
        alert=notices["alert"],
        publish=notices["publish"],
    )


def _with_keys(client: Client, options: PolicyOptions) -> PolicyOptions:
    """Each contact given as ``CONTACT <ADDRESS>`` with that card's key and the reporter's name.

    The server encrypts the contact's notices to the pinned card's age
    recipient, and they name the reporter by the display name on this
    side's own card: the name the trustee saw when they compared cards.

    Raises:
        ConfigError: no pinned contact of that name.
    """
    own = client.own_card().name
    lists: dict[str, tuple[Notice, ...]] = {}
    for channel in ("remind", "alert", "publish"):
        notices = []
        for notice in getattr(options, channel):
            if notice.contact is not None:
                entry = contacts.pinned(client, notice.contact)
                if not entry.contact.verified and not json_mode():
                    err().print(
                        f"[bold yellow]{shown(entry.name)}'s card is not verified:[/] compare "
                        f"fingerprints first (`evault editors verify {shown(entry.name)}`)."
                    )
                notice = replace(notice, age=entry.card.recipient, name=own)
            notices.append(notice)
        lists[channel] = tuple(notices)
    return replace(options, remind=lists["remind"], alert=lists["alert"], publish=lists["publish"])


def _secrets_json(made: Sequence[tuple[str, Notice]]) -> list[dict[str, str | None]]:
    return [{"channel": c, "webhook": n.webhook, "secret": n.secret} for c, n in made]


def _print_secrets(made: Sequence[tuple[str, Notice]]) -> None:
    """New webhook secrets: shown once, never kept on this device."""
    if json_mode():
        return
    console = out()
    for channel, notice in made:
        console.print(
            f"Webhook {shown(notice.webhook)} ({channel}) secret: {shown(notice.secret)}\n"
            "  Give it to whoever runs that receiver, over a channel you trust: it checks "
            "that notices come from the vault. It is not shown again."
        )


def _keyed_contacts(client: Client) -> dict[str, str]:
    """Pinned contacts by their card's age recipient: whom a keyed notice contact is."""
    found: dict[str, str] = {}
    for name, contact in client.state.contacts.items():
        with contextlib.suppress(VaultError):
            found.setdefault(contact.parsed().recipient, name)
    return found


def _policy_lines(policy: Policy, keyed: dict[str, str] | None = None) -> list[str]:
    keyed = keyed or {}

    def one(notice: Notice) -> str:
        if notice.age is not None and notice.age in keyed:
            notice = replace(notice, contact=keyed[notice.age])
        return notice.shown()

    def listed(notices: Sequence[Notice]) -> str:
        return ", ".join(one(n) for n in notices) or "-"

    reminders = ", ".join(f"{format_duration(r)} before" for r in policy.reminders) or "-"
    return [
        f"check in every {format_duration(policy.interval)}, "
        f"grace {format_duration(policy.grace)}, "
        f"cooling-off {format_duration(policy.cooling_off)}, duress: {policy.duress}",
        f"reminders: {reminders}; to {listed(policy.remind)}",
        f"alerts to: {listed(policy.alert)}",
        f"on release, tell: {listed(policy.publish)}",
    ]


@click.group()
def switch() -> None:
    """Arm, change and check the dead-man switch of your vault."""


def _reveal_by_id(client: Client, values: Sequence[str]) -> tuple[str, ...]:
    """``--reveal-item`` choices with each item named by its id, however it was named."""
    pairs = [value.rpartition("=") for value in values]
    if all(is_item_id(item) for item, _, _ in pairs):
        # Whole ids: the arming itself checks each is among the items armed.
        return tuple(values)
    chosen = resolve(client, [item for item, _, _ in pairs])
    return tuple(f"{c.item}={fields}" for c, (_, _, fields) in zip(chosen, pairs, strict=True))


@switch.command("set")
@click.option("--every", type=DURATION, help="Check-in interval, e.g. 24h, 3d (needed to arm).")
@click.option("--grace", type=DURATION, help="Wait after a missed deadline before release [24h].")
@click.option(
    "--remind-before",
    type=DURATION,
    multiple=True,
    help="Remind you this long before a deadline (repeatable; replaces the list).",
)
@click.option(
    "--duress",
    type=click.Choice(DURESS_MODES),
    help="What a duress check-in does: alert trustees, release early, or both [alert].",
)
@click.option("--cooling-off", type=DURATION, help="Delay of weakening changes [72h].")
@click.option(
    "--trustee",
    "trustees",
    multiple=True,
    metavar="NAME",
    help="A verified editor who holds a release share (repeatable; only when arming).",
)
@click.option(
    "--threshold",
    type=int,
    help=(
        "Shares needed to release, of the server's and the trustees' "
        "[1 without trustees, else 2; only when arming]."
    ),
)
@click.option("--remind-email", multiple=True, metavar="ADDRESS", help="Your reminders.")
@click.option("--remind-webhook", multiple=True, metavar="URL", help="Your reminders.")
@click.option(
    "--alert-email",
    multiple=True,
    metavar="ADDRESS",
    help="Trustees' alerts; 'NAME <ADDRESS>' encrypts them to the contact NAME's card.",
)
@click.option(
    "--alert-webhook",
    multiple=True,
    metavar="URL",
    help="Trustees' alerts; 'NAME <URL>' encrypts them to the contact NAME's card.",
)
@click.option("--publish-email", multiple=True, metavar="ADDRESS", help="Told on release.")
@click.option("--publish-webhook", multiple=True, metavar="URL", help="Told on release.")
@click.option("--handle", metavar="NAME", help="Your handle on the web check-in page.")
@click.option("--reveal", metavar="FIELDS", help=REVEAL_HELP + " Only when arming.")
@click.option(
    "--reveal-item",
    multiple=True,
    metavar="ITEM=FIELDS",
    help="The same for one item (by file name or id), overriding --reveal "
    "(repeatable; only when arming).",
)
@handle_errors
def set_(
    every: int | None,
    grace: int | None,
    remind_before: tuple[int, ...],
    duress: str | None,
    cooling_off: int | None,
    trustees: tuple[str, ...],
    threshold: int | None,
    remind_email: tuple[str, ...],
    remind_webhook: tuple[str, ...],
    alert_email: tuple[str, ...],
    alert_webhook: tuple[str, ...],
    publish_email: tuple[str, ...],
    publish_webhook: tuple[str, ...],
    handle: str | None,
    reveal: str | None,
    reveal_item: tuple[str, ...],
) -> None:
    """Arm the switch, or change its policy once armed.

    Arming makes a release key on this device, splits it among the server
    and the trustees (any --threshold of them can rebuild it), adds it to
    every item you hold that no release published yet, and tells the server
    your policy. If you miss a check-in by more than the grace period, your
    release set is published. Before arming you are told what the release
    will make public and choose, per file, whether its name, capture time
    and note are published too (on a terminal you are asked; --reveal and
    --reveal-item for scripts); notes stay private unless you say so.

    Once armed, each option given replaces that part of the policy (contacts
    given for a list replace that list). A change that weakens the switch
    (a longer interval, grace or cooling-off, fewer contacts, another duress
    mode) waits out the cooling-off delay, and your trustees are told.

    Notices say nothing in the clear: their details are encrypted to the
    recipient's key, or behind a private link. Give a trustee's address as
    'NAME <ADDRESS>' (NAME a contact whose card you verified) and their
    notices are encrypted to that card and name you by your card's name.
    """
    options = _options(
        every,
        grace,
        remind_before,
        duress,
        cooling_off,
        {
            "remind": (remind_email, remind_webhook),
            "alert": (alert_email, alert_webhook),
            "publish": (publish_email, publish_webhook),
        },
    )
    if handle is not None:
        service.check_handle(handle)
    # Refused before anything is sent.
    if reveal is not None:
        Reveal.parse(reveal)
    parse_item_choices(reveal_item)
    with open_client() as client:
        client.vault  # noqa: B018 — refuses early for accounts without a vault
        options = _with_keys(client, options)
        # Read only: a refused `switch set` leaves this device's state as it was.
        status = service.read_status(client)
        if status.armed:
            if reveal is not None or reveal_item:
                raise ConfigError(
                    "what a release publishes is chosen when arming, and for each `evault add`",
                    hint="to choose again for the files armed already: `evault switch disarm`, "
                    "then `evault switch set` once it is disarmed",
                )
            _change(client, status, options, trustees, threshold, handle)
            return
        if reveal_item:
            reveal_item = _reveal_by_id(client, reveal_item)
        policy, made = build_policy(options, None)
        phrase = duress_phrase = None
        if handle is not None:
            phrase, duress_phrase = _phrases(client)
        console = err()
        # With trustees, no single custodian (a trustee or the server) releases alone.
        needed = service.default_threshold(trustees) if threshold is None else threshold
        if service.all_shares_needed(trustees, needed) and not json_mode():
            console.print(
                f"[bold yellow]Every custodian's share is needed ({needed} of {needed}):[/] if "
                "one trustee is lost or refuses, nothing is released. Name another trustee, or "
                "give a lower --threshold, to allow for that."
            )
        armed = service.arm(
            client,
            policy,
            trustees=trustees,
            threshold=needed,
            handle=handle,
            phrase=phrase,
            duress_phrase=duress_phrase,
            narrate=lambda line: None if json_mode() else console.print(line),
            choose=lambda manifests: choose_for_arming(
                client.own_card().name, manifests, reveal=reveal, per_item=reveal_item
            ),
            chosen_items=parse_item_choices(reveal_item),
        )
        _print_secrets(made)
        if json_mode():
            print_json(
                {
                    "state": "armed",
                    "deadline": _iso(armed.deadline),
                    "release_recipient": armed.recipient,
                    "release_items": list(armed.items),
                    "threshold": armed.threshold,
                    "custodians": [h.name for h in armed.holders],
                    "log_index": armed.entry.index,
                    "webhook_secrets": _secrets_json(made),
                    "reveal": {
                        item: str(choice)
                        for item, choice in zip(armed.items, armed.reveals, strict=True)
                    },
                }
            )
            return
        names = ", ".join(shown(h.name) for h in armed.holders)
        out().print(
            f"Armed: {len(armed.items)} item(s) in the release set, {armed.threshold} of "
            f"{len(armed.holders)} shares needed ({names}); logged at entry {armed.entry.index}.\n"
            f"Next check-in due by {shown_time(armed.deadline, _now())}: evault checkin"
        )


def _change(
    client: Client,
    status: service.Status,
    options: PolicyOptions,
    trustees: Sequence[str],
    threshold: int | None,
    handle: str | None,
) -> None:
    if trustees or threshold is not None:
        if status.state == "releasing":
            hint = (
                "a release is under way; once it is published, `evault switch set` arms the "
                "vault again, with the trustees you name then"
            )
        else:
            hint = (
                "`evault switch disarm` (it waits out the cooling-off delay), then "
                "`evault switch set` with the new trustees"
            )
        raise ConfigError("trustees and threshold are fixed while the switch is armed", hint=hint)
    if status.policy is None:
        raise ConfigError("the server sent no policy for the armed switch")
    changed = options != PolicyOptions()
    if not changed and handle is None:
        raise ConfigError(
            "the switch is armed already; nothing to change",
            hint="give the options to change, or see `evault switch status`",
        )
    result = None
    made: list[tuple[str, Notice]] = []
    phrases = None
    if handle is not None:
        # Asked first: a mistyped phrase then leaves the policy as it was too.
        phrases = _phrases(client)
    if changed:
        policy, made = build_policy(options, status.policy)
        result = service.change_policy(client, policy)
        _print_secrets(made)
    if handle is not None and phrases is not None:
        service.set_phrases(client, handle, *phrases)
    if json_mode():
        print_json(
            {
                "status": None if result is None else ("applied" if result.applied else "pending"),
                "change": None if result is None or result.change is None else result.change.id,
                "effective_at": None
                if result is None or result.change is None
                else _iso(result.change.effective_at),
                "handle": handle,
                "webhook_secrets": _secrets_json(made),
            }
        )
        return
    console = out()
    if result is not None and result.change is not None:
        when = result.change.effective_at.strftime("%Y-%m-%d %H:%M UTC")
        console.print(f"Pending until {when} (cooling-off); trustees were told")
    elif result is not None:
        console.print("Applied")
    if handle is not None:
        console.print(f"Web check-in handle set: {shown(handle)}")


@switch.command("status")
@handle_errors
def status_() -> None:
    """Show the switch: state, deadline, last check-in, policy, custodians, pending changes."""
    with open_client() as client:
        client.vault  # noqa: B018
        status = service.fetch_status(client)
        names = {}
        for position, custodian in status.custodians:
            if custodian == service.SERVER:
                names[position] = "the server"
            else:
                found = client.state.contact_for_account(custodian)
                names[position] = found[0] if found else custodian
        if json_mode():
            print_json(
                {
                    "vault": status.vault or client.vault,
                    "state": status.state,
                    "release_recipient": status.release_recipient,
                    "deadline": _iso(status.deadline),
                    "release_at": _iso(status.release_at),
                    "last_checkin": _iso(status.last_checkin),
                    "armed_at": _iso(status.armed_at),
                    "policy": None if status.policy is None else status.policy.to_json(),
                    "threshold": status.threshold,
                    "custodians": [names[p] for p, _ in status.custodians],
                    "release_items": list(status.release_items),
                    "handle": status.handle,
                    "releases": [
                        {
                            "number": number,
                            "published_at": _iso(when),
                            "page": service.release_page(
                                client, status.vault or client.vault, number
                            ),
                        }
                        for number, when in status.releases
                    ],
                    "pending": [
                        {
                            "id": c.id,
                            "kind": c.kind,
                            "params": c.params,
                            "effective_at": _iso(c.effective_at),
                            "votes": c.votes,
                            "votes_needed": c.votes_needed,
                        }
                        for c in status.pending
                    ],
                }
            )
            return
        console = out()
        now = _now()
        vault = status.vault or client.vault
        console.print(f"state:         [bold]{shown(status.state)}[/]")
        for n, (number, when) in enumerate(status.releases):
            page = service.release_page(client, vault, number)
            label = "published:" if n == 0 else ""
            console.print(f"{label:15}release {number}, {shown_time(when, now)}: {shown(page)}")
        if status.state == "released":
            console.print(
                "The switch is not armed since its release. `evault switch set --every 24h` "
                "arms it again, with a new release key, for the items no release published."
            )
            return
        if status.policy is None or status.state == "disarmed":
            console.print("Not armed: `evault switch set --every 24h` arms it.")
            return
        if status.state == "releasing":
            page = service.release_page(client, vault, len(status.releases) + 1)
            console.print(f"release:       under way: {shown(page)}")
        console.print(f"deadline:      {shown_time(status.deadline, now)}")
        console.print(f"release at:    {shown_time(status.release_at, now)}")
        console.print(f"last check-in: {shown_time(status.last_checkin, now)}")
        keyed = _keyed_contacts(client)
        for n, line in enumerate(_policy_lines(status.policy, keyed)):
            console.print(f"{'policy:' if n == 0 else '':15}{shown(line)}")
        holders = ", ".join(shown(names[p]) for p, _ in status.custodians)
        console.print(f"custodians:    {holders}; {status.threshold} needed to release")
        count = len(status.release_items)
        console.print(f"release set:   {count} item(s)")
        console.print(f"web handle:    {shown(status.handle or '-')}")
        if not status.pending:
            return
        table = Table(title="pending changes")
        for column in ("change", "kind", "takes effect", "cancel votes"):
            table.add_column(column)
        for change in status.pending:
            table.add_row(
                change.id,
                change.kind,
                shown_time(change.effective_at, now),
                f"{change.votes} of {change.votes_needed}",
            )
        console.print(table)


@switch.command("disarm")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@handle_errors
def disarm(yes: bool) -> None:
    """Ask to disarm the switch: it takes effect after the cooling-off delay.

    Your trustees are told at once and may cancel it meanwhile.
    """
    confirm("Disarm the dead-man switch (after the cooling-off delay)?", yes=yes)
    with open_client() as client:
        client.vault  # noqa: B018
        change, entry = service.disarm(client)
        when = change.effective_at.strftime("%Y-%m-%d %H:%M UTC")
        if json_mode():
            print_json(
                {
                    "status": "pending",
                    "change": change.id,
                    "effective_at": _iso(change.effective_at),
                    "log_index": entry.index,
                }
            )
            return
        out().print(
            f"Disarm requested; takes effect at {when} unless trustees cancel it "
            f"(cooling-off); logged at entry {entry.index}"
        )


@switch.command("phrase")
@click.option("--handle", metavar="NAME", help="Your handle on the web check-in page.")
@handle_errors
def phrase(handle: str | None) -> None:
    """Set your handle and phrases for the web check-in page (no JavaScript, works in Tor Browser).

    The check-in phrase checks you in like `evault checkin`; the optional
    duress phrase looks the same and triggers the switch's duress policy.
    The server keeps only Argon2id hashes of them.
    """
    if handle is not None:
        service.check_handle(handle)
    with open_client() as client:
        client.vault  # noqa: B018
        status = service.read_status(client)
        if not status.armed:
            raise ConfigError(
                "the switch is not armed: the web check-in is for an armed switch",
                hint="arm it with a handle: `evault switch set --every 24h --handle NAME`",
            )
        if handle is None:
            handle = status.handle
            if handle is None:
                raise ConfigError("no handle yet", hint="give --handle NAME")
        check_phrase, duress_phrase = _phrases(client)
        service.set_phrases(client, handle, check_phrase, duress_phrase)
        if json_mode():
            print_json({"handle": handle, "duress_phrase": duress_phrase is not None})
            return
        out().print(f"Web check-in set for the handle {shown(handle)}")


@click.command()
@handle_errors
def checkin() -> None:
    """Tell the server you are free: a signed check-in (one request, no login)."""
    with open_client() as client:
        done = service.checkin(client)
        if json_mode():
            print_json(
                {"status": "ok", "deadline": _iso(done.deadline), "log_index": done.entry.index}
            )
            return
        out().print(
            f"Checked in; next check-in due by {shown_time(done.deadline, _now())}; "
            f"logged at entry {done.entry.index}"
        )


COMMANDS = [switch, checkin]

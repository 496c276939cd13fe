"""A model of Art. 3 end to end: consent and refusals in, the gateway's answers out.

Hypothesis interleaves, for two recipients and the topics news and sale:
- consent events through the API (`POST /api/v1/consents`): opt-ins the person made
  (double_opt_in, web_form), opt-ins that are records of others (cmp, manual), an
  exemption (business_card) and opt-outs (cmp, manual), all topics or one;
- one-click opt-outs (`POST /u/TOKEN`, RFC 8058), as a mailbox provider sends them, and
  mailto opt-outs (a reply without AUTH to the opt-out mailbox, the token in its Subject);
- imports (`POST /api/v1/imports`, a CSV row) and their approval by a second person;
- messages through SMTP, with and without a topic header, recipient by recipient.

A small model, written here from legal.md rather than from gateway/consent/model.py,
predicts every answer: RCPT refuses what no topic could allow, DATA decides for the
message's topic; an opt-out applies to its scope (and to mail without a topic) until the
person opts in again through a form, for that scope (an import never lifts it); a consent
from before a refusal does not come back; an imported consent counts once a second person
approved its batch, an imported refusal at once. The upstream must receive exactly the
messages answered 250. Each step goes to one of the gateways sharing the store.
"""

from __future__ import annotations

import json
import smtplib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from gateway.consent.address import normalize_address, suppression_key
from gateway.unsubscribe.tokens import TokenCodec
from tests.support.gateway import PASSWORD, GatewayProcess, cli
from tests.support.messages import marketing
from tests.support.sink import RecordingSink

PEOPLE = ("taro@example.com", "hanako@example.com")
TOPICS = (None, "news", "sale")
LIFTING = {"double_opt_in", "web_form"}  # opt-ins the person made through a form
GRANTS = [("opted_in", m) for m in ("double_opt_in", "web_form", "cmp", "manual")] + [
    ("exempt", "business_card")]
REFUSALS = [("opted_out", m) for m in ("cmp", "manual")]
IMPORT_REFUSALS = [("opted_out", m) for m in ("import_optout", "manual")]
OPTOUT_BOX = "unsubscribe@gw.test"  # base_config's policy.unsubscribe_address


@dataclass(frozen=True)
class Fact:
    at: float
    status: str  # opted_in | exempt | opted_out
    method: str
    topic: str | None
    batch: str | None = None  # imported in this batch


def in_effect(facts: list[Fact], approved: set[str]) -> list[Fact]:
    return [f for f in facts
            if f.batch is None or f.status == "opted_out" or f.batch in approved]


def model_decides(facts: list[Fact], topic: str | None) -> bool:
    """May mail on `topic` (None: no topic) go to this person now?"""
    refusals = [f for f in facts if f.status == "opted_out"
                and (f.topic is None or topic is None or f.topic == topic)]

    def lifted(refusal: Fact) -> bool:
        return any(f.status == "opted_in" and f.method in LIFTING and f.batch is None
                   and f.at > refusal.at
                   and (f.topic == refusal.topic or (refusal.topic is None and f.topic == topic))
                   for f in facts)

    if any(not lifted(r) for r in refusals):
        return False
    last_refusal = max((r.at for r in refusals), default=float("-inf"))
    return any(f.status != "opted_out" and (f.topic is None or f.topic == topic)
               and f.at > last_refusal for f in facts)


def model_rcpt(facts: list[Fact]) -> bool:
    """At RCPT the topic is not known yet: refuse only what no topic could allow (a topic
    of the records, or any other, for which only all-topic records count)."""
    return any(model_decides(facts, t) for t in ("\0another topic", "news", "sale"))


@dataclass
class Instance:
    gw: GatewayProcess
    codec: TokenCodec  # its unsubscribe secret (one-click links)


@dataclass
class Env:
    instances: list[Instance]  # gateways sharing one store (one, or several on PostgreSQL)
    sink: RecordingSink
    api: str  # bearer token of a marketer (consent.ingest, imports)
    approver: str  # bearer token of a second person who approves imports

    @classmethod
    def start(cls, gateways: list[GatewayProcess], sink: RecordingSink) -> Env:
        tokens = []
        for role, name in (("marketer", "cmp-sync"), ("approver", "ap-kato")):
            made = cli("token", "create", "--role", role, "--name", name, "--json",
                       config=gateways[0].config_path)
            assert made.returncode == 0, made.stderr
            tokens.append(json.loads(made.stdout)["secret"])
        instances = [Instance(gw, TokenCodec.from_file(gw.config["policy"]["unsubscribe_secret_file"]))
                     for gw in gateways]
        return cls(instances, sink, tokens[0], tokens[1])


def run_model(env: Env, examples: int, steps: int) -> None:
    https = [httpx.Client(base_url=i.gw.http_url, timeout=15) for i in env.instances]
    last = len(env.instances) - 1  # each step goes to one instance, chosen at random
    marketer = {"Authorization": f"Bearer {env.api}"}
    # Times of API and import records, strictly increasing on each of two clocks: reports
    # of the past (before every click; a late CMP sync) and of the present (now, after
    # every click so far; never ahead of the gateway's clock, where they would not count yet).
    past = [time.time() - 10 * 365 * 86400]
    present = [0.0]

    class ConsentFlow(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            # a fresh pair of people per sequence: nothing recorded for them yet
            run = uuid.uuid4().hex[:8]
            self.people = [p.replace("@", f"+{run}@") for p in PEOPLE]
            self.facts: dict[str, list[Fact]] = {p: [] for p in self.people}
            self.pending: list[str] = []  # import batches waiting for a second person
            self.approved: set[str] = set()
            self.sent = len(env.sink.received)

        def tick(self, who: int, late: bool) -> tuple[str, float, str]:
            """The person, and the next moment for an API or import record (and as ISO 8601)."""
            if late:
                past[0] += 1
                at = past[0]
            else:
                at = present[0] = max(present[0] + 0.001, time.time())
            return self.people[who], at, datetime.fromtimestamp(at, UTC).isoformat()

        @rule(who=st.integers(0, 1), what=st.sampled_from(GRANTS + REFUSALS),
              topic=st.sampled_from(TOPICS), on=st.integers(0, last), late=st.booleans())
        def api_event(self, who: int, what: tuple[str, str], topic: str | None, on: int,
                      late: bool) -> None:
            (person, at, when), (status, method) = self.tick(who, late), what
            body = {"sender": "sample", "address": person, "status": status, "method": method,
                    "occurred_at": when, "source_system": "model",
                    "source_ref": uuid.uuid4().hex, "topic": topic}
            r = https[on].post("/api/v1/consents", json=body, headers=marketer)
            assert r.status_code == 201, r.text
            self.facts[person].append(Fact(at, status, method, topic))

        @rule(who=st.integers(0, 1), what=st.sampled_from(GRANTS + IMPORT_REFUSALS),
              topic=st.sampled_from(TOPICS), on=st.integers(0, last), late=st.booleans())
        def import_row(self, who: int, what: tuple[str, str], topic: str | None, on: int,
                       late: bool) -> None:
            (person, at, when), (status, method) = self.tick(who, late), what
            csv = ("email,status,method,consented_at,topic\r\n"
                   f"{person},{status},{method},{when},{topic or ''}\r\n")
            r = https[on].post("/api/v1/imports", data={"sender": "sample"}, headers=marketer,
                               files={"file": ("rows.csv", csv.encode(), "text/csv")})
            assert r.status_code == 201, r.text
            batch = r.json()
            assert batch["state"] == ("approved" if status == "opted_out" else "pending"), batch
            self.facts[person].append(Fact(at, status, method, topic, batch["batch_id"]))
            if batch["state"] == "pending":
                self.pending.append(batch["batch_id"])
            else:
                self.approved.add(batch["batch_id"])

        @rule(which=st.integers(0, 3), on=st.integers(0, last))
        def approve(self, which: int, on: int) -> None:
            if not self.pending:
                return
            batch = self.pending.pop(which % len(self.pending))
            r = https[on].post(f"/api/v1/imports/{batch}/approve",
                               headers={"Authorization": f"Bearer {env.approver}"})
            assert r.status_code == 200 and r.json()["status"] == "approved", r.text
            self.approved.add(batch)

        @rule(who=st.integers(0, 1), on=st.integers(0, last),
              channel=st.sampled_from(["one_click", "mailto"]))
        def opt_out_by_link(self, who: int, on: int, channel: str) -> None:
            """The person uses the message's List-Unsubscribe: the one-click POST a mailbox
            provider sends (RFC 8058), or the mailto (a reply without AUTH to the opt-out
            mailbox, the token in its Subject). One rule for both: such a refusal, at the
            server's now, can only be lifted by a later form opt-in, and twice the weight
            left too few sequences where mail may go."""
            person = self.people[who]
            token = env.instances[on].codec.encode("sample", suppression_key(normalize_address(person)))
            if channel == "one_click":
                r = https[on].post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
                assert r.status_code == 200, r.text
            else:
                with smtplib.SMTP("127.0.0.1", env.instances[on].gw.port, timeout=15) as client:
                    client.ehlo("home.test")
                    client.mail(person)
                    assert client.rcpt(OPTOUT_BOX)[0] == 250
                    code, reply = client.data(
                        f"From: <{person}>\r\nTo: <{OPTOUT_BOX}>\r\nSubject: unsubscribe {token}"
                        "\r\n\r\nplease stop\r\n".encode())
                assert code == 250, reply
            # recorded at the server's now, before this moment
            self.facts[person].append(Fact(time.time(), "opted_out", channel, None))

        @rule(who=st.integers(0, 1), topic=st.sampled_from(TOPICS), on=st.integers(0, last))
        def send(self, who: int, topic: str | None, on: int) -> None:
            person = self.people[who]
            facts = in_effect(self.facts[person], self.approved)
            with smtplib.SMTP("127.0.0.1", env.instances[on].gw.port, timeout=15) as client:
                client.ehlo("ma.test")
                client.login("ma-tool", PASSWORD)
                client.mail("news@bounce.example.jp")
                code, reply = client.rcpt(person)
                expected = model_rcpt(facts)
                assert (code == 250) == expected, (person, topic, facts, code, reply)
                if code != 250:
                    assert code == 550 and b"[optin." in reply, reply
                    return
                headers = {"X-Tokuden-Topic": topic} if topic else {}
                code, reply = client.data(marketing(to=person, extra_headers=headers))
            expected = model_decides(facts, topic)
            assert (code == 250) == expected, (person, topic, facts, code, reply)
            if code == 250:
                self.sent += 1
            else:
                assert code == 550 and b"[optin." in reply, reply

        @invariant()
        def upstream_got_exactly_what_was_accepted(self) -> None:
            assert len(env.sink.received) == self.sent

    run_state_machine_as_test(
        ConsentFlow,
        settings=settings(max_examples=examples, stateful_step_count=steps, deadline=None,
                          derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow]),
    )
    for http in https:
        http.close()



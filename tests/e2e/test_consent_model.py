"""Model-based test of Art. 3 end to end on one gateway (tests/support/consent_model.py).

The same model runs across two gateway instances sharing PostgreSQL in
tests/integration/store/test_multi_instance.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.consent_model import Env, Fact, in_effect, model_decides, model_rcpt, run_model
from tests.support.gateway import GatewayProcess, base_config
from tests.support.sink import RecordingSink

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    sink = RecordingSink().start()
    tmp = tmp_path_factory.mktemp("consent-model")
    gw = GatewayProcess(tmp, base_config(tmp, sink.port)).start()
    yield Env.start([gw], sink)
    gw.stop()
    sink.stop()


@pytest.mark.timeout(600)  # passing: ~20 s; a failure's shrinking takes minutes
def test_consent_and_refusals_decide_every_answer(env: Env) -> None:
    run_model(env, examples=100, steps=30)


def test_the_model_itself_on_the_cases_legal_md_names() -> None:
    """Hand-checked cases, so that the model is not merely the gateway's code again."""
    f = Fact
    assert not model_decides([], None)
    assert model_decides([f(1, "opted_in", "cmp", None)], "news")
    assert not model_decides([f(1, "opted_in", "cmp", None), f(2, "opted_out", "cmp", None)], None)
    # a refusal of one topic stops that topic, and mail without a topic, not the others
    grant, no_news = f(1, "opted_in", "cmp", None), f(2, "opted_out", "cmp", "news")
    assert not model_decides([grant, no_news], "news")
    assert not model_decides([grant, no_news], None)
    assert model_decides([grant, no_news], "sale")
    # a record by others (cmp) does not lift a refusal; the person's own form does
    out = f(2, "opted_out", "manual", None)
    assert not model_decides([grant, out, f(3, "opted_in", "cmp", None)], None)
    assert model_decides([grant, out, f(3, "opted_in", "web_form", None)], None)
    # an opt-in for one topic lifts a global refusal for that topic only
    news_again = f(3, "opted_in", "double_opt_in", "news")
    assert model_decides([grant, out, news_again], "news")
    assert not model_decides([grant, out, news_again], "sale")
    # a global opt-in does not lift the refusal of one topic
    assert not model_decides([grant, no_news, f(3, "opted_in", "web_form", None)], "news")
    # an imported consent waits for approval; an imported refusal counts at once, and an
    # imported form opt-in never lifts a refusal
    imported = f(3, "opted_in", "web_form", None, batch="b1")
    assert not model_decides(in_effect([imported], set()), None)
    assert model_decides(in_effect([imported], {"b1"}), None)
    assert not model_decides(in_effect([grant, out, imported], {"b1"}), None)
    assert not model_decides(in_effect([grant, f(2, "opted_out", "manual", None, "b2")], set()),
                             None)
    # RCPT: a global refusal stops at once, unless the person opted in to a topic again
    assert not model_rcpt([grant, out])
    assert model_rcpt([grant, out, news_again])
    assert model_rcpt([f(1, "opted_in", "web_form", "news")])
    assert not model_rcpt([f(1, "opted_out", "cmp", "news")])

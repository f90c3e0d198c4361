"""The reference agent's offline rule brain (services/agent/rules.py): when it hands off, what
it answers itself, and what it says when the handoff tool is not offered."""

from __future__ import annotations

import pytest

from services.agent.domain import NO_HANDOFF_ANSWER, Answer, Handoff, Resumed, Turn
from services.agent.rules import (
    NOT_UNDERSTOOD,
    WITHOUT_HANDOFF,
    RuleBrain,
    decide,
    faq_answer,
    find_trigger,
    instruction_phrases,
    normalize,
)

INSTRUCTIONS = (
    "Be friendly.\nHand off when: the user mentions a lawyer, legal action or a complaint."
)


@pytest.mark.parametrize(
    "text",
    [
        "I want to talk to a person",
        "Can I speak with someone, please?",
        "Connect me with an agent",
        "I need a human",
        "human please",
        "Agent!",
        "REPRESENTATIVE",
        "Is there a real person I can chat to?",
        "Ich möchte mit einem Menschen sprechen",
        "Mitarbeiter bitte",
        "Je voudrais parler à un conseiller",
        "je veux parler à quelqu'un",
        "Quiero hablar con una persona",
        "quero falar com um atendente",
        "voglio parlare con un operatore",
        "ik wil een medewerker spreken",
    ],
)
def test_asking_for_a_person_in_several_languages(text: str) -> None:
    trigger = find_trigger(text)
    assert trigger is not None and trigger.kind == "person", text


@pytest.mark.parametrize(
    ("text", "kind", "matched"),
    [
        ("My card was CHARGED TWICE!", "billing", "charged twice"),
        ("I will file a chargeback", "billing", "chargeback"),
        ("this looks like fraud to me", "billing", "fraud"),
        ("I want a refund now", "billing", "refund now"),
        ("Mir wurde doppelt abgebucht", "billing", "doppelt abgebucht"),
        ("On m'a débité deux fois", "billing", "debite deux fois"),
        ("I have thoughts of self-harm", "safety", "self-harm"),
        ("he threatened me", "safety", "threatened"),
        ("This is an emergency", "safety", "emergency"),
        ("Es ist ein Notfall", "safety", "notfall"),
    ],
)
def test_urgent_billing_and_safety_words(text: str, kind: str, matched: str) -> None:
    trigger = find_trigger(text)
    assert trigger is not None and (trigger.kind, trigger.matched) == (kind, matched)


def test_safety_comes_before_billing_and_person() -> None:
    trigger = find_trigger("emergency: I was charged twice, get me a human")
    assert trigger is not None and trigger.kind == "safety"


@pytest.mark.parametrize(
    "text",
    [
        "hello",
        "The agent was helpful, thanks",
        "I talked to an agent yesterday and it's fixed",
        "How do refunds work?",
        "what are your opening hours?",
        "My lawyer is on holiday",  # a trigger only when the instructions name it
    ],
)
def test_ordinary_messages_do_not_hand_off(text: str) -> None:
    assert find_trigger(text) is None


def test_instruction_lines_name_trigger_phrases() -> None:
    instructions = (
        "Be friendly.\n"
        "Hand off when: the user mentions a lawyer, legal action or a complaint.\n"
        '- handoff if "cancel my contract"; refund over 100 EUR\n'
        "Escalate when the user asks for a manager\n"
        "Never promise delivery dates."
    )
    assert instruction_phrases(instructions) == [
        "lawyer",
        "legal action",
        "complaint",
        "cancel my contract",
        "refund over 100 eur",
        "manager",
    ]


def test_instruction_phrases_hand_off_as_whole_words() -> None:
    trigger = find_trigger("My LAWYER will call you", INSTRUCTIONS)
    assert trigger is not None and (trigger.kind, trigger.matched) == ("instructions", "lawyer")
    assert find_trigger("lawyers are expensive", INSTRUCTIONS) is None


def test_normalize_folds_case_and_accents() -> None:
    assert normalize("  Débité   DEUX fois ") == "debite deux fois"
    assert normalize("Straße") == "strasse"


def test_decide_hands_off_with_a_one_sentence_reason() -> None:
    thought = decide(Turn("I want to talk to a person", can_hand_off=True))
    assert thought == Handoff("The user asked to talk to a person.")
    billing = decide(Turn("I was charged twice", can_hand_off=True))
    assert billing == Handoff('The user reported an urgent billing problem ("charged twice").')
    configured = decide(Turn("my lawyer says hi", instructions=INSTRUCTIONS, can_hand_off=True))
    assert configured == Handoff(
        'The user mentioned "lawyer", a handoff condition of the instructions.'
    )


@pytest.mark.parametrize(
    ("text", "kind"),
    [("I want to talk to a person", "person"), ("this is an emergency", "safety")],
)
def test_decide_answers_when_the_tool_is_not_offered(text: str, kind: str) -> None:
    assert decide(Turn(text, can_hand_off=False)) == Answer(WITHOUT_HANDOFF[kind])
    assert WITHOUT_HANDOFF["person"] == NO_HANDOFF_ANSWER


def test_decide_answers_simple_things_itself() -> None:
    hello = decide(Turn("Hi there"))
    assert isinstance(hello, Answer) and hello.understood and hello.text.startswith("Hello")
    hours = decide(Turn("When are you open?"))
    assert isinstance(hours, Answer) and "Monday to Friday" in hours.text
    files = decide(Turn("", attachments=("photo.png",)))
    assert isinstance(files, Answer) and files.understood and "file" in files.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi! When are you open?", "Monday to Friday"),
        ("Thanks! How do refunds work?", "within 30 days"),
        ("hello", "Hello!"),
    ],
)
def test_a_question_wins_over_a_greeting(text: str, expected: str) -> None:
    answer = decide(Turn(text))
    assert isinstance(answer, Answer) and expected in answer.text


def test_decide_says_when_it_did_not_understand() -> None:
    assert decide(Turn("blorp fizzle wob", can_hand_off=True)) == Answer(NOT_UNDERSTOOD, False)


async def test_rule_brain_is_the_pure_decision() -> None:
    brain = RuleBrain()
    turn = Turn("human please", can_hand_off=True)
    assert await brain.think(turn) == decide(turn)
    assert brain.name == "rules" and brain.wants_history is False
    await brain.aclose()


# R20: the first message after a human stretch ------------------------------------------------

RESOLVED = Resumed(
    reason="The user reported an urgent billing problem (charged twice).",
    teammate="Jane",
    resolution_note="Refunded the second charge; it shows in 3-5 days.",
    ended_by="operator",
    turns=(("human", "I've refunded the second charge."),),
)


def test_back_from_a_teammate_the_rules_acknowledge_the_resolution() -> None:
    thought = decide(Turn("hi again", can_hand_off=True, resumed=RESOLVED))
    assert thought == Answer(
        "Welcome back! My teammate Jane resolved this: Refunded the second charge; it shows "
        "in 3-5 days. Anything else I can help with?"
    )


def test_back_with_a_question_the_welcome_comes_with_the_answer() -> None:
    thought = decide(Turn("When are you open?", resumed=RESOLVED))
    assert isinstance(thought, Answer)
    assert thought.text.startswith("Welcome back! My teammate Jane resolved this:")
    assert thought.text.endswith(faq_answer("When are you open?") or "no FAQ answer")
    assert "Anything else" not in thought.text


def test_back_without_a_note_or_a_name() -> None:
    spoke = (("human", "Let me look."),)
    by_switch = Resumed(reason="The user asked to talk to a person.", turns=spoke)
    by_timeout = Resumed(
        reason="The user asked to talk to a person.", ended_by="timeout", turns=spoke
    )
    assert decide(Turn("thanks", resumed=by_switch)) == Answer(
        "Welcome back! My teammate has handed this chat back to me. Anything else I can help with?"
    )
    text = decide(Turn("hmm", resumed=by_timeout))
    assert text == Answer(
        "Welcome back! It's me, the assistant, again: the chat with my teammate ended. "
        "Anything else I can help with?"
    )  # understood: a returning user is never a failed clarification


def test_back_and_asking_for_a_person_again_still_hands_off() -> None:
    thought = decide(Turn("I want to talk to a person", can_hand_off=True, resumed=RESOLVED))
    assert thought == Handoff("The user asked to talk to a person.")


def test_without_a_context_the_greeting_is_unchanged() -> None:
    thought = decide(Turn("hello"))
    assert isinstance(thought, Answer) and thought.text.startswith("Hello! I'm the support")


def test_back_when_no_teammate_ever_wrote_the_agent_says_sorry() -> None:
    """Found from outside: a user nobody answered was told the chat with a teammate ended."""
    waited = Resumed(
        reason="The user asked to talk to a person.",
        ended_by="timeout",
        turns=(("user", "hello?"), ("system", "You're number 1 in line.")),
    )
    thought = decide(Turn("anyone?", resumed=waited))
    assert isinstance(thought, Answer)
    assert thought.text.startswith("I'm sorry none of my teammates could get to you in time.")
    assert "teammate ended" not in thought.text


@pytest.mark.parametrize(
    "text", ["hello", "help", "are you a bot?", "What can you do?", ""], ids=repr
)
def test_without_the_handoff_tool_no_answer_promises_a_person(text: str) -> None:
    """Found from outside: with handoff off, the greeting still said "Say 'talk to a person'
    at any time to reach a human teammate"."""
    files = ("receipt.pdf",) if not text else ()
    offered = decide(Turn(text, attachments=files, can_hand_off=True))
    refused = decide(Turn(text, attachments=files, can_hand_off=False))
    assert isinstance(offered, Answer) and isinstance(refused, Answer)
    assert "person" in offered.text
    assert "person" not in refused.text and "teammate" not in refused.text, refused.text
    assert refused.understood

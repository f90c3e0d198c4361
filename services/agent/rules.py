"""The default brain: offline rules, no network, no key.

It hands off (when the tool is offered) on:
- a request for a person: "I want to talk to a person", "agent please", "Ich möchte mit einem
  Menschen sprechen", "je veux parler à un conseiller", "quiero hablar con una persona"...
  (English, German, French, Spanish, Portuguese, Italian, Dutch);
- urgent billing words: chargeback, fraud, charged twice, refund now...;
- safety words: self-harm, suicide, threat, emergency...;
- the trigger phrases of the published version's instructions, written as lines such as
  `Hand off when: the user mentions a lawyer, legal action or a complaint`.
It answers greetings, thanks, opening hours and a tiny FAQ itself, and says so when it did not
understand (the worker counts those turns: the third in a row hands off). On the first message
after a human stretch (R20) it acknowledges the return, naming the teammate and their
resolution note when it has them, instead of greeting the user as a stranger.

Matching is on a normalised text: case-folded, accents stripped, so "Mitarbeiterin",
"débité" and "DEBITE" all match their plain spelling.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from services.agent.domain import NO_HANDOFF_ANSWER, Answer, Handoff, Resumed, Thought, Turn

Kind = Literal["safety", "billing", "person", "instructions"]


def normalize(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.replace("\u2019", "'"))
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(plain.casefold().replace("ß", "ss").split())


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text))


def _vocabulary(*languages: str) -> frozenset[str]:
    return frozenset(word for words in languages for word in words.split())


def _phrases(text: str, phrases: tuple[str, ...]) -> str | None:
    """The first phrase found in `text` as whole words."""
    for phrase in phrases:
        if re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text):
            return phrase
    return None


# A request for a person: a "talk" verb and a person word, or a "want" verb and a strong
# person word, or a very short message that is little more than a strong person word.
TALK = _vocabulary(
    "talk speak chat connect transfer escalate forward reach contact",
    "sprechen reden verbinden verbinde weiterleiten",
    "parler discuter joindre",
    "hablar comunicarme contactar",
    "falar conversar",
    "parlare",
    "spreken praten",
)
WANT = _vocabulary(
    "want need request get give",
    "will mochte moechte brauche",
    "veux voudrais besoin",
    "quiero necesito",
    "quero preciso",
    "voglio vorrei",
    "wil",
)
PERSON = _vocabulary(
    "person human agent representative rep someone somebody operator staff manager",
    "supervisor advisor adviser people",
    "mensch menschen mitarbeiter mitarbeiterin berater beraterin jemandem jemand",
    "personne humain conseiller conseillere quelqu",
    "persona humano agente asesor asesora representante alguien",
    "pessoa atendente alguem",
    "operatore umano qualcuno",
    "medewerker mens iemand",
)
STRONG = _vocabulary(
    "person human representative operator supervisor",
    "mensch menschen mitarbeiter mitarbeiterin",
    "humain conseiller conseillere",
    "humano persona asesor representante",
    "pessoa atendente",
    "operatore umano",
    "medewerker mens",
)
SHORT = _vocabulary("agent agente rep")
PERSON_PHRASES = (
    "real person", "real human", "live agent", "live person", "human agent", "human being",
    "customer service", "put me through", "echten menschen", "vrai humain", "una persona real",
)  # fmt: skip

BILLING = (
    "chargeback", "charge back", "fraud", "fraudulent", "charged twice", "charged me twice",
    "double charged", "double charge", "double-charged", "charged two times",
    "unauthorized charge", "unauthorised charge", "unauthorized transaction",
    "unauthorised transaction", "stolen card", "card was stolen", "refund now",
    "refund immediately", "immediate refund", "refund me now", "dispute the charge",
    "dispute a charge", "took my money",
    "doppelt abgebucht", "doppelt belastet", "betrug", "ruckbuchung", "sofort erstatten",
    "fraude", "debite deux fois", "preleve deux fois", "remboursement immediat",
    "cobrado dos veces", "cobraron dos veces", "cobro duplicado", "reembolso inmediato",
    "contracargo", "cobrado duas vezes", "estorno", "addebitato due volte", "frode",
)  # fmt: skip

SAFETY = (
    "self-harm", "self harm", "selfharm", "suicide", "suicidal", "kill myself",
    "hurt myself", "harm myself", "end my life", "want to die", "threat", "threats",
    "threaten", "threatened", "threatening", "emergency", "in danger", "abuse", "abused",
    "violence", "violent", "weapon", "bomb",
    "notfall", "selbstmord", "suizid", "umbringen", "bedroht", "drohung", "gefahr",
    "urgence", "me tuer", "menace", "menaces", "en danger",
    "emergencia", "suicidio", "matarme", "amenaza", "amenazado", "peligro",
    "me matar", "ameaca", "emergenza", "minaccia",
)  # fmt: skip

QUOTES = " \t.:!\"'`\u201c\u201d\u2018\u2019"
_INSTRUCTION = re.compile(
    r"^\s*(?:[-*•]\s*)?(?:hand[\s-]?off|escalate|transfer)\s+(?:when|if)\b\s*[:\-\u2013]?\s*"
    r"(?:the\s+user\s+(?:mentions|says|writes|uses|talks\s+about|asks\s+(?:about|for))\s+)?"
    r"(.+)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Trigger:
    kind: Kind
    matched: str


def instruction_phrases(instructions: str) -> list[str]:
    """The trigger phrases of lines like `Hand off when: a lawyer, legal action or fraud`."""
    phrases: list[str] = []
    for line in instructions.splitlines():
        found = _INSTRUCTION.match(line)
        if not found:
            continue
        for part in re.split(r"[,;]|\s+or\s+", found.group(1)):
            phrase = normalize(part.strip(QUOTES))
            phrase = re.sub(r"^(?:an?|the)\s+", "", phrase)
            if phrase and phrase not in phrases:
                phrases.append(phrase)
    return phrases


def asks_for_person(text: str) -> str | None:
    phrase = _phrases(text, PERSON_PHRASES)
    if phrase:
        return phrase
    words = _words(text)
    person, strong = words & PERSON, words & STRONG
    if person and words & TALK:
        return min(person)
    if strong and words & WANT:
        return min(strong)
    short = words & (STRONG | SHORT)
    if short and len(words) <= 3:  # "agent", "human please", "Mitarbeiter bitte"
        return min(short)
    return None


def find_trigger(text: str, instructions: str = "") -> Trigger | None:
    """Why this message should go to a person, if it should (the most serious reason first)."""
    plain = normalize(text)
    if found := _phrases(plain, SAFETY):
        return Trigger("safety", found)
    if found := _phrases(plain, BILLING):
        return Trigger("billing", found)
    if found := asks_for_person(plain):
        return Trigger("person", found)
    if found := _phrases(plain, tuple(instruction_phrases(instructions))):
        return Trigger("instructions", found)
    return None


def reason_for(trigger: Trigger) -> str:
    """The handoff's one-sentence reason, as the desk and the audit read it."""
    return {
        "safety": f'The user raised a safety concern ("{trigger.matched}") that needs a person.',
        "billing": f'The user reported an urgent billing problem ("{trigger.matched}").',
        "person": "The user asked to talk to a person.",
        "instructions": (
            f'The user mentioned "{trigger.matched}", a handoff condition of the instructions.'
        ),
    }[trigger.kind]


# What the rule brain says when it cannot hand off (handoff disabled, anonymous user).
WITHOUT_HANDOFF = {
    "safety": (
        "If you or someone else is in danger, please contact your local emergency services "
        "right away. I'm an automated assistant and can't hand this chat to a person here."
    ),
    "billing": (
        "That sounds urgent. I can't hand this chat to a person here, so please contact our "
        "billing team directly at billing@example.com; I can help with general questions."
    ),
    "person": NO_HANDOFF_ANSWER,
    "instructions": NO_HANDOFF_ANSWER,
}

MENU = "opening hours, orders and delivery, returns and refunds, or your account"
# The first match answers: the questions first, then greetings and thanks, so that "Hi! When
# are you open?" gets the opening hours.
FAQ: tuple[tuple[str, str], ...] = (
    (
        r"\bare you (a |an )?(bot|robot|human|ai|person|real)\b",
        "I'm an AI assistant. If you'd rather talk to a person, just say so.",
    ),
    (
        r"\b(opening hours|business hours|office hours|hours|when (are|do) you (open|close)|"
        r"are you open|open (today|tomorrow|on|at|now))\b",
        "We're open Monday to Friday, 9:00 to 18:00 (CET). This chat answers around the clock.",
    ),
    (
        r"\b(password|log ?in|sign ?in|account locked)\b",
        'To reset your password, choose "Forgot password?" on the sign-in page and follow '
        "the link we email you; it is valid for one hour.",
    ),
    (
        r"\b(shipping|delivery|deliver|delivered|track|tracking|parcel|package|order status)\b",
        "Orders ship within 1-2 business days. You can follow yours with the tracking link "
        "in your confirmation email.",
    ),
    (
        r"\b(refund|refunds|return|returns|money back)\b",
        "You can return an item within 30 days for a full refund: open Orders, choose "
        '"Return an item". Refunds reach your account within 5-10 business days.',
    ),
    (
        r"\b(price|prices|pricing|cost|costs|plan|plans|subscription)\b",
        "Our plans start at 9 EUR a month; the pricing page lists what each plan includes.",
    ),
    (
        r"^(help|help me|menu)\W*$|\bwhat can you do\b|\bhow does this work\b",
        f'I can help with {MENU}. Ask away, or say "talk to a person" for a human teammate.',
    ),
    (
        r"^(hi|hello|hey|hiya|good (morning|afternoon|evening)|bonjour|salut|hola|hallo|"
        r"guten (tag|morgen)|ciao|ola|hoi|buongiorno)\b",
        f"Hello! I'm the support assistant. I can help with {MENU}. "
        'Say "talk to a person" at any time to reach a human teammate.',
    ),
    (
        r"\b(thanks|thank you|thx|ty|merci|danke|gracias|grazie|obrigad[oa]|dank je)\b",
        "You're welcome! Is there anything else I can help with?",
    ),
    (r"^(bye|goodbye|see you|tschuss|au revoir|adios)\b", "Goodbye, and have a nice day!"),
    (r"^(ok|okay|yes|no|sure|alright|fine|great|cool|nice)\W*$", "Alright. Anything else?"),
)


# The same answers for a user the handoff tool is not offered to (handoff off in the published
# version, an anonymous user): they must not promise a person who cannot come.
def _faq(starts: str) -> str:
    return next(answer for _, answer in FAQ if answer.startswith(starts))


WITHOUT_PERSON = {
    _faq("I'm an AI assistant"): "I'm an AI assistant, here to help.",
    _faq("I can help with"): f"I can help with {MENU}. Ask away.",
    _faq("Hello!"): f"Hello! I'm the support assistant. I can help with {MENU}.",
}
NOT_UNDERSTOOD = f"Sorry, I didn't get that. Could you put it another way? I can help with {MENU}."
FILES_ONLY = (
    "Thanks, I received your file. I can't look at files myself; if a person should see it, "
    'say "talk to a person".'
)
FILES_ONLY_WITHOUT_PERSON = (
    "Thanks, I received your file. I can't look at files myself: tell me in words what you "
    "need and I'll do my best."
)


def faq_answer(text: str) -> str | None:
    plain = normalize(text)
    for pattern, answer in FAQ:
        if re.search(pattern, plain):
            return answer
    return None


ANYTHING_ELSE = "Anything else I can help with?"
# Answers of the FAQ that would greet a returning user as a stranger, or say nothing new.
SMALL_TALK = frozenset(answer for _, answer in FAQ[-4:])


def welcome_back(resumed: Resumed) -> str:
    """R20: the return acknowledged, with what the teammate left for the AI to know."""
    teammate = f"My teammate {resumed.teammate}" if resumed.teammate else "My teammate"
    if resumed.resolution_note:
        note = resumed.resolution_note.rstrip(" .!")
        return f"Welcome back! {teammate} resolved this: {note}."
    if not any(role == "human" for role, _ in resumed.turns):  # nobody from the team wrote
        return (
            "I'm sorry none of my teammates could get to you in time. I'm here again, and I "
            "can see what you wrote."
        )
    if resumed.ended_by == "timeout":
        return "Welcome back! It's me, the assistant, again: the chat with my teammate ended."
    return f"Welcome back! {teammate} has handed this chat back to me."


def decide(turn: Turn) -> Thought:
    """The rule brain's whole decision about one message."""
    trigger = find_trigger(turn.text, turn.instructions)
    if trigger is not None:
        if turn.can_hand_off:
            return Handoff(reason_for(trigger))
        return Answer(WITHOUT_HANDOFF[trigger.kind])
    if not turn.text.strip() and turn.attachments:
        return Answer(FILES_ONLY if turn.can_hand_off else FILES_ONLY_WITHOUT_PERSON)
    answer = faq_answer(turn.text)
    if answer is not None and not turn.can_hand_off:
        answer = WITHOUT_PERSON.get(answer, answer)
    if turn.resumed is not None:
        rest = answer if answer is not None and answer not in SMALL_TALK else ANYTHING_ELSE
        return Answer(f"{welcome_back(turn.resumed)} {rest}")
    if answer is not None:
        return Answer(answer)
    return Answer(NOT_UNDERSTOOD, understood=False)


class RuleBrain:
    name = "rules"
    wants_history = False

    async def think(self, turn: Turn) -> Thought:
        return decide(turn)

    async def aclose(self) -> None:
        return None

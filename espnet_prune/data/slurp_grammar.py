"""A grammar of voice-assistant commands shaped like SLURP's: scenarios, actions, typed slots.

Each generated command comes with everything a SLURP record holds: the sentence, its
`[type : filler]` annotation, spaCy-like tokens, and entity spans over those tokens.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from itertools import zip_longest

from espnet_prune.data.grammar import number_to_words
from espnet_prune.data.slurp import Token

SLOT_FILLERS: dict[str, tuple[str, ...]] = {
    "date": ("today", "tomorrow", "monday", "tuesday", "wednesday", "thursday", "friday",
             "saturday", "sunday", "next week", "this weekend"),
    # spaCy splits "tomorrow's" in two, so the scorer's gold filler is "tomorrow 's"
    "date_possessive": ("tomorrow's", "today's", "monday's", "this week's"),
    "timeofday": ("morning", "afternoon", "evening", "tonight"),
    "place_name": ("london", "paris", "boston", "chicago", "tokyo", "berlin", "madrid",
                   "seattle", "dublin", "new york", "san francisco"),
    "artist_name": ("taylor swift", "the beatles", "adele", "queen", "bob dylan", "miles davis",
                    "madonna", "coldplay", "nirvana", "elvis presley"),
    "radio_name": ("jazz f. m.", "classic rock radio", "kiss f. m.", "radio one", "news talk"),
    "event_name": ("meeting", "dentist appointment", "lunch", "team call", "birthday party",
                   "yoga class", "doctor's visit"),
    "person": ("john", "mary", "alice", "bob", "david", "emma", "peter", "sarah", "james"),
    "email_address": ("john@gmail dot com", "mary@yahoo dot com", "john.smith@gmail dot com",
                      "alice@hotmail dot com", "peter.jones@outlook dot com"),
    "house_place": ("kitchen", "bedroom", "living room", "bathroom", "garage", "office"),
    "food_type": ("pizza", "chinese", "sushi", "indian", "burgers", "thai", "noodles"),
    "business_name": ("domino's", "pizza hut", "mcdonald's", "subway", "burger king"),
    "social_handle": ("@comcast", "@tesco", "@nike", "@amazon"),
    "media_type": ("twitter", "facebook"),
    "currency_name": ("u. s. d.", "euro", "pound", "yen", "dollar", "g. b. p.", "rupee"),
    "news_topic": ("sports", "politics", "technology", "science", "business", "music"),
    "list_name": ("shopping", "grocery", "to do", "holiday", "packing"),
    "time_zone": ("g. m. t.", "pacific time", "eastern time", "central european time"),
}  # fmt: skip

# A slot name is a type ("{date}") or a type with a different filler list ("{business_name:social_handle}").
_SLOT = re.compile(r"\{(\w+)(?::(\w+))?\}")


@dataclass(frozen=True)
class IntentGrammar:
    """The templates of one intent; `{slot}` marks an entity."""

    scenario: str
    action: str
    templates: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.scenario}_{self.action}"


INTENTS = (
    IntentGrammar("alarm", "set", ("wake me up at {time}", "set an alarm for {time} {date}",
                                   "alarm at {time} please")),
    IntentGrammar("alarm", "query", ("what alarms do i have", "show my alarms for {date}",
                                     "when is my next alarm")),
    IntentGrammar("alarm", "remove", ("cancel my alarm for {time}", "delete the {time} alarm",
                                      "turn off all my alarms")),
    IntentGrammar("weather", "query", ("what is the weather in {place_name} {date}",
                                       "will it rain {date}", "is it cold in {place_name}",
                                       "weather forecast for {date} in {place_name}",
                                       "what is {date:date_possessive} weather in {place_name}")),
    IntentGrammar("play", "music", ("play some {artist_name}", "play songs by {artist_name}",
                                    "i want to hear {artist_name}")),
    IntentGrammar("play", "radio", ("play {radio_name}", "tune in to {radio_name}",
                                    "turn on the radio station {radio_name}")),
    IntentGrammar("calendar", "set", ("schedule a {event_name} on {date} at {time}",
                                      "add {event_name} to my calendar for {date}",
                                      "remind me about the {event_name} at {time}")),
    IntentGrammar("calendar", "query", ("what is on my calendar {date}",
                                        "do i have any meetings {date}",
                                        "what are my plans for {date} {timeofday}")),
    IntentGrammar("email", "sendemail", ("send an email to {person}",
                                         "email {email_address} about the {event_name}",
                                         "write an email to {person} at {email_address}")),
    IntentGrammar("email", "query", ("do i have new emails", "check my email from {person}",
                                     "any emails from {person} {date}")),
    IntentGrammar("iot", "hue_lightoff", ("turn off the lights in the {house_place}",
                                          "switch off the {house_place} lights", "lights off")),
    IntentGrammar("iot", "hue_lightup", ("make the {house_place} brighter",
                                         "turn up the lights in the {house_place}")),
    IntentGrammar("takeaway", "order", ("order {food_type} from {business_name}",
                                        "i want to order some {food_type}",
                                        "get me {food_type} from {business_name}")),
    IntentGrammar("datetime", "query", ("what time is it in {place_name}",
                                        "what is the date {date}",
                                        "what's the time in {time_zone}")),
    IntentGrammar("news", "query", ("what is the latest news on {news_topic}",
                                    "tell me the {news_topic} news",
                                    "any {news_topic} headlines {date}")),
    IntentGrammar("qa", "currency", ("convert {currency_name} to {currency_name}",
                                     "what is the exchange rate of {currency_name} to {currency_name}",
                                     "how much is one {currency_name} in {currency_name}")),
    IntentGrammar("social", "post", ("tweet {business_name:social_handle} my order is late",
                                     "post on {media_type} that i am happy",
                                     "complain to {business_name:social_handle} on {media_type}")),
    IntentGrammar("lists", "createoradd", ("add milk to my {list_name} list",
                                           "create a {list_name} list",
                                           "put eggs on the {list_name} list")),
)  # fmt: skip

# spaCy splits these clitics off ("what's" -> "what" "'s"), and SLURP's tokens are spaCy's.
_CLITICS = ("n't", "'s", "'re", "'ll", "'m", "'ve", "'d")


@dataclass(frozen=True)
class Command:
    """A generated command with SLURP's views of it."""

    scenario: str
    action: str
    sentence: str
    annotation: str
    tokens: tuple[Token, ...]
    entity_spans: tuple[tuple[str, tuple[int, ...]], ...]  # (type, token ids)


def tokenize(text: str) -> list[str]:
    """Whitespace words with clitics split off, as spaCy tokenises SLURP's sentences."""
    tokens = []
    for word in text.split():
        clitic = next((c for c in _CLITICS if word.endswith(c) and len(word) > len(c)), None)
        tokens += [word[: -len(clitic)], clitic] if clitic else [word]
    return tokens


def time_filler(rng: random.Random) -> str:
    """A clock time in words, e.g. "seven thirty pm"."""
    hour = number_to_words(rng.randint(1, 12)).lower()
    minutes = rng.choice(("", "fifteen", "thirty", "forty five"))
    return " ".join(part for part in (hour, minutes, rng.choice(("am", "pm"))) if part)


def slot_types() -> frozenset[str]:
    """Every entity type the grammar can produce."""
    return frozenset(m.group(1) for intent in INTENTS for t in intent.templates for m in _SLOT.finditer(t))


def generate_command(
    rng: random.Random, intent: IntentGrammar, capitalise_annotation: bool = False
) -> Command:
    """One command of `intent`; with `capitalise_annotation` the annotation, and the tokens taken
    from it, have capitals where the sentence has none ("Check outlook", "[date : Friday]"), as
    some released SLURP records do."""
    # [text, type, filler list or None, text, type, filler list or None, ..., text]
    parts = _SLOT.split(rng.choice(intent.templates))
    words: list[str] = []
    annotation: list[str] = []
    tokens: list[str] = []
    spans: list[tuple[str, tuple[int, ...]]] = []
    for literal, slot in zip_longest(parts[::3], zip(parts[1::3], parts[2::3], strict=True)):
        words += literal.split()
        annotation += literal.split()
        tokens += tokenize(literal)
        if slot is None:
            break
        entity_type, filler_list = slot[0], slot[1] or slot[0]
        filler = time_filler(rng) if filler_list == "time" else rng.choice(SLOT_FILLERS[filler_list])
        annotated_filler = filler.capitalize() if capitalise_annotation else filler
        filler_tokens = tokenize(annotated_filler)
        spans.append((entity_type, tuple(range(len(tokens), len(tokens) + len(filler_tokens)))))
        tokens += filler_tokens
        words.append(filler)
        annotation.append(f"[{entity_type} : {annotated_filler}]")
    annotated = " ".join(annotation)
    if capitalise_annotation:
        annotated = annotated[0].upper() + annotated[1:]
        tokens[0] = tokens[0][0].upper() + tokens[0][1:]
    return Command(
        scenario=intent.scenario,
        action=intent.action,
        sentence=" ".join(words),
        annotation=annotated,
        tokens=tuple(Token(surface=t, id=i, lemma=t, pos="X") for i, t in enumerate(tokens)),
        entity_spans=tuple(spans),
    )

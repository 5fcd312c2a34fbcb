"""A small grammar of storybook sentences, written like LibriSpeech's normalised transcripts.

Upper case, words separated by single spaces, apostrophes kept ("DIDN'T", "MARY'S"), numbers
as words ("TWENTY ONE"), 3 to 12 words, a vocabulary of a few hundred words: enough variety to
be speech, small enough for a tiny model trained from scratch to learn.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

NAMES = (
    "ANNA", "JOHN", "MARY", "PETER", "LUCY", "THOMAS", "EMMA", "GEORGE", "ALICE", "HENRY",
    "CLARA", "WILLIAM", "ROSE", "ARTHUR", "JANE", "EDWARD", "MARTHA", "OLIVER", "SARAH", "PHILIP",
)  # fmt: skip
NOUNS = (  # (singular, plural)
    ("MAN", "MEN"), ("WOMAN", "WOMEN"), ("CHILD", "CHILDREN"), ("HORSE", "HORSES"),
    ("DOG", "DOGS"), ("BIRD", "BIRDS"), ("HOUSE", "HOUSES"), ("DOOR", "DOORS"),
    ("WINDOW", "WINDOWS"), ("RIVER", "RIVERS"), ("TREE", "TREES"), ("ROAD", "ROADS"),
    ("HILL", "HILLS"), ("GARDEN", "GARDENS"), ("LETTER", "LETTERS"), ("BOOK", "BOOKS"),
    ("SHIP", "SHIPS"), ("BOAT", "BOATS"), ("TOWN", "TOWNS"), ("VILLAGE", "VILLAGES"),
    ("FIELD", "FIELDS"), ("STONE", "STONES"), ("FLOWER", "FLOWERS"), ("CANDLE", "CANDLES"),
    ("TABLE", "TABLES"), ("CHAIR", "CHAIRS"), ("KING", "KINGS"), ("QUEEN", "QUEENS"),
    ("SOLDIER", "SOLDIERS"), ("FARMER", "FARMERS"), ("SAILOR", "SAILORS"), ("DOCTOR", "DOCTORS"),
    ("TEACHER", "TEACHERS"), ("FRIEND", "FRIENDS"), ("BROTHER", "BROTHERS"), ("SISTER", "SISTERS"),
    ("WAGON", "WAGONS"), ("BRIDGE", "BRIDGES"), ("CASTLE", "CASTLES"), ("FOREST", "FORESTS"),
    ("MOUNTAIN", "MOUNTAINS"), ("LAMP", "LAMPS"), ("COAT", "COATS"), ("BASKET", "BASKETS"),
    ("APPLE", "APPLES"), ("CAKE", "CAKES"), ("COIN", "COINS"), ("KEY", "KEYS"),
    ("BELL", "BELLS"), ("CLOCK", "CLOCKS"), ("CLOUD", "CLOUDS"), ("STAR", "STARS"),
    ("LAKE", "LAKES"), ("WALL", "WALLS"), ("GATE", "GATES"), ("ROOM", "ROOMS"),
)  # fmt: skip
ADJECTIVES = (
    "OLD", "YOUNG", "SMALL", "LARGE", "DARK", "BRIGHT", "COLD", "WARM", "QUIET", "LOUD",
    "TALL", "HEAVY", "EMPTY", "FULL", "RED", "GREEN", "BLUE", "WHITE", "BLACK", "GOLDEN",
    "STRANGE", "GENTLE", "BRAVE", "TIRED", "HAPPY", "ANCIENT", "NARROW", "WIDE", "DEEP",
    "SILENT", "WILD", "CLEAN", "BROKEN", "HIDDEN", "DISTANT", "FAMOUS", "POOR",
)  # fmt: skip
TRANSITIVE_VERBS = (
    "SAW", "FOUND", "OPENED", "CLOSED", "CARRIED", "BUILT", "PAINTED", "FOLLOWED", "WATCHED",
    "CALLED", "HELD", "DROPPED", "LIFTED", "BROUGHT", "PUSHED", "PULLED", "MET", "HEARD",
    "SOLD", "BOUGHT", "LOST", "KEPT", "TOOK", "MISSED", "CLEANED", "FIXED", "VISITED",
    "REMEMBERED", "DREW", "COUNTED", "HID", "SHOWED",
)  # fmt: skip
BASE_VERBS = ("SEE", "FIND", "OPEN", "HEAR", "KNOW", "LIKE", "FOLLOW", "REMEMBER")
INTRANSITIVE_VERBS = (
    "WALKED", "RAN", "SLEPT", "WAITED", "LAUGHED", "CRIED", "SANG", "DANCED", "SMILED",
    "ARRIVED", "RETURNED", "STOPPED", "LISTENED", "WANDERED", "TRAVELLED", "SHOUTED",
    "WHISPERED", "RESTED", "CLIMBED", "SWAM",
)  # fmt: skip
ADVERBS = (
    "SLOWLY", "QUICKLY", "QUIETLY", "SOFTLY", "CAREFULLY", "SUDDENLY", "GENTLY", "EARLY",
    "LATE", "TOGETHER", "ALONE", "AGAIN", "OFTEN", "ALWAYS", "SOON", "HOME", "AWAY", "TODAY",
    "YESTERDAY",
)  # fmt: skip
PREPOSITIONS = (
    "TO", "FROM", "INTO", "ACROSS", "NEAR", "BEHIND", "BESIDE", "UNDER", "OVER", "THROUGH",
    "AROUND", "TOWARD", "ALONG",
)  # fmt: skip
PRONOUNS = ("HE", "SHE", "THEY", "WE", "I")
DETERMINERS = ("THE", "A", "HIS", "HER", "THEIR", "OUR", "THAT", "THIS", "EVERY")
NEGATIONS = ("DIDN'T", "COULDN'T", "WOULDN'T", "DON'T")
TIME_PHRASES = (
    "IN THE MORNING", "AT NIGHT", "IN THE EVENING", "AFTER DINNER", "BEFORE DAWN",
    "ON SUNDAY", "IN THE SPRING", "AT NOON",
)  # fmt: skip
TIME_UNITS = ("MINUTES", "HOURS", "DAYS", "WEEKS", "YEARS")

TEMPLATES = (
    "{det} {adj} {noun} {vt} {det} {noun}",
    "{name} {vi} {adv}",
    "{pron} {vt} {count} {adj} {nouns}",
    "THE {noun} WAS {adj} AND {adj}",
    "{name} SAID THAT THE {noun} WAS {adj}",
    "{time} {pron} {vt} THE {adj} {noun} {prep} THE {noun}",
    "{pron} HAD {count} {nouns} {prep} THE {noun}",
    "{name}'S {noun} {vi} {prep} THE {noun}",
    "{pron} {neg} {vbase} THE {adj} {noun}",
    "THE {nouns} {vi} {prep} THE {adj} {noun} {time}",
    "{name} AND {name} {vi} {adv} {prep} THE {noun}",
    "IT WAS {count} {unit} BEFORE THE {noun} {vi}",
    "WHERE IS THE {adj} {noun}",
    "{name} {vt} {det} {noun} {time}",
)

_ONES = (
    "ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE", "TEN",
    "ELEVEN", "TWELVE", "THIRTEEN", "FOURTEEN", "FIFTEEN", "SIXTEEN", "SEVENTEEN", "EIGHTEEN",
    "NINETEEN",
)  # fmt: skip
_TENS = ("", "", "TWENTY", "THIRTY", "FORTY", "FIFTY", "SIXTY", "SEVENTY", "EIGHTY", "NINETY")
_SLOT = re.compile(r"\{(\w+)\}")


def number_to_words(number: int) -> str:
    """0..99 in LibriSpeech's style: 21 -> "TWENTY ONE" (no hyphen)."""
    if not 0 <= number <= 99:
        raise ValueError(f"{number} is outside 0..99")
    if number < 20:
        return _ONES[number]
    tens, ones = divmod(number, 10)
    return _TENS[tens] if ones == 0 else f"{_TENS[tens]} {_ONES[ones]}"


def _count(rng: random.Random) -> str:
    # "{count} {nouns}" needs a plural, so counts start at two.
    return number_to_words(rng.randint(2, 99))


_SLOT_FILLERS: dict[str, Callable[[random.Random], str]] = {
    "name": lambda rng: rng.choice(NAMES),
    "noun": lambda rng: rng.choice(NOUNS)[0],
    "nouns": lambda rng: rng.choice(NOUNS)[1],
    "adj": lambda rng: rng.choice(ADJECTIVES),
    "vt": lambda rng: rng.choice(TRANSITIVE_VERBS),
    "vi": lambda rng: rng.choice(INTRANSITIVE_VERBS),
    "vbase": lambda rng: rng.choice(BASE_VERBS),
    "adv": lambda rng: rng.choice(ADVERBS),
    "prep": lambda rng: rng.choice(PREPOSITIONS),
    "pron": lambda rng: rng.choice(PRONOUNS),
    "det": lambda rng: rng.choice(DETERMINERS),
    "neg": lambda rng: rng.choice(NEGATIONS),
    "time": lambda rng: rng.choice(TIME_PHRASES),
    "unit": lambda rng: rng.choice(TIME_UNITS),
    "count": _count,
}


def sentence(rng: random.Random) -> str:
    """One random sentence of the grammar."""
    template = rng.choice(TEMPLATES)
    return _SLOT.sub(lambda slot: _SLOT_FILLERS[slot.group(1)](rng), template)


def vocabulary() -> frozenset[str]:
    """Every word a sentence of the grammar can contain."""
    words = {word for template in TEMPLATES for word in template.split() if "{" not in word}
    for group in (
        NAMES,
        ADJECTIVES,
        TRANSITIVE_VERBS,
        BASE_VERBS,
        INTRANSITIVE_VERBS,
        ADVERBS,
        PREPOSITIONS,
        PRONOUNS,
        DETERMINERS,
        NEGATIONS,
        TIME_UNITS,
    ):
        words.update(group)
    words.update(word for pair in NOUNS for word in pair)
    words.update(word for phrase in TIME_PHRASES for word in phrase.split())
    words.update(f"{name}'S" for name in NAMES)
    words.update(word for n in range(2, 100) for word in number_to_words(n).split())
    return frozenset(words)

"""The caption grammar of synthworld: synonyms, attributes and sentence templates.

A clip is described by its sources (concept + drawn attributes + how loud, near or in the
background it is) and, for scenes, a place. `caption` draws one sentence from the grammar:
different synonyms, templates and subsets of attributes give several different captions of
the same clip. Captions share words with the downstream class names ("a dog barks", "a car
honks") but never spell a class name with its underscore or slash.
"""

from __future__ import annotations

import numpy as np

from clapsweep.data.synthsounds import Source

Rng = np.random.Generator

# Per concept: forms "noun phrases / present tense verbs / -ing verbs", each part a '|' list;
# a form keeps the noun and verb numbers in agreement. Optional "fast"/"slow" adverbs.
LEXICON: dict[str, dict[str, list[str] | str]] = {
    "dog_bark": {
        "forms": [
            "a dog|a puppy|a hound|a pet dog / barks|yaps|woofs / barking|yapping|woofing",
        ],
    },
    "cat_meow": {"forms": ["a cat|a kitten|a house cat / meows|mews|miaows / meowing|mewing"]},
    "bird_chirp": {
        "forms": [
            "a bird|a songbird|a small bird|a sparrow / chirps|tweets|sings / chirping|tweeting|singing",
            "birds|several birds|songbirds / chirp|tweet|sing / chirping|tweeting|singing",
        ],
    },
    "crickets": {
        "forms": [
            "a cricket|an insect|a cicada / chirps|trills|buzzes / chirping|trilling|buzzing",
            "crickets|insects / chirp|trill / chirping|trilling",
        ],
    },
    "baby_cry": {
        "forms": [
            "a baby|an infant|a toddler|a newborn / cries|wails|sobs / crying|wailing|sobbing"
        ]
    },
    "rain": {
        "forms": [
            "rain|a downpour|a rain shower / falls|pours down|patters on a roof"
            " / falling|pouring down|pattering on a roof",
            "raindrops / fall|patter on the ground / falling|pattering on the ground",
        ],
        "fast": "heavily|hard",
        "slow": "lightly|gently",
    },
    "thunder": {
        "forms": [
            "thunder|a thunderstorm|a storm / rumbles|roars|crashes / rumbling|roaring|crashing"
        ]
    },
    "wind": {
        "forms": [
            "wind|a strong wind|a breeze|a gust of wind / blows|howls|gusts / blowing|howling"
        ],
        "fast": "strongly|hard",
        "slow": "gently|softly",
    },
    "water_stream": {
        "forms": [
            "water|a stream|a brook|a creek / flows|trickles|babbles / flowing|trickling|babbling"
        ]
    },
    "sea_waves": {
        "forms": [
            "waves|ocean waves / crash on the shore|roll in|wash onto a beach"
            " / crashing on the shore|rolling in|washing onto a beach",
            "the ocean|the surf / crashes|roars|washes ashore / crashing|roaring|washing ashore",
        ]
    },
    "speech_man": {
        "forms": [
            "a man|a male voice|a guy|a man / speaks|talks|says something"
            " / speaking|talking|saying something"
        ]
    },
    "speech_woman": {
        "forms": [
            "a woman|a female voice|a lady|a woman / speaks|talks|says something"
            " / speaking|talking|saying something"
        ]
    },
    "crowd_babble": {
        "forms": [
            "a crowd|a group of people / murmurs|chatters|talks / murmuring|chattering|talking",
            "people|many people|several people / chatter|talk|converse"
            " / chattering|talking|conversing",
        ]
    },
    "children": {
        "forms": [
            "children|kids|a group of children / play|shout and laugh|yell playfully"
            " / playing|shouting and laughing|yelling playfully",
        ]
    },
    "footsteps": {
        "forms": [
            "someone|a person|a man / walks|steps along|treads / walking|stepping along|treading",
            "footsteps / echo|tap along|approach / echoing|tapping along|approaching",
        ],
        "fast": "quickly|briskly|hurriedly",
        "slow": "slowly|leisurely",
    },
    "applause": {
        "forms": [
            "an audience|a crowd / applauds|claps|cheers and claps"
            " / applauding|clapping|cheering and clapping",
            "people / applaud|clap / applauding|clapping",
        ],
        "fast": "enthusiastically|vigorously",
        "slow": "politely|lightly",
    },
    "door_knock": {
        "forms": [
            "someone|a person|a visitor / knocks on a wooden door|knocks on a door|raps on a door"
            " / knocking on a wooden door|knocking on a door|rapping on a door",
        ]
    },
    "keyboard": {
        "forms": [
            "someone|a person|an office worker / types on a keyboard|taps on computer keys"
            " / typing on a keyboard|tapping on computer keys",
            "keys on a keyboard|computer keys / clack|click / clacking|clicking",
        ]
    },
    "vacuum": {
        "forms": [
            "a vacuum|a hoover|a vacuum cleaner / runs|whirs|drones / running|whirring|droning"
        ]
    },
    "clock_tick": {
        "forms": [
            "a clock|a wall clock|a watch / ticks|tick-tocks|clicks / ticking|tick-tocking|clicking"
        ]
    },
    "glass_break": {
        "forms": [
            "glass|a window|a bottle|a glass / shatters|breaks|smashes / shattering|breaking|smashing"
        ]
    },
    "church_bell": {
        "forms": [
            "a church bell|a large bell|a bell / rings|tolls|chimes / ringing|tolling|chiming",
            "bells|church bells / ring|toll|chime / ringing|tolling|chiming",
        ]
    },
    "dishes": {
        "forms": [
            "dishes|plates|cutlery / clink|clatter|rattle / clinking|clattering|rattling",
            "a spoon|a fork|a glass / clinks|taps on a plate|clatters"
            " / clinking|tapping on a plate|clattering",
        ]
    },
    "ac_hum": {
        "forms": [
            "an air conditioner|an air conditioning unit|a ventilation fan|an air vent"
            " / hums|whirs|drones / humming|whirring|droning"
        ]
    },
    "car_horn": {
        "forms": [
            "a car|a vehicle|a driver|a truck / honks|beeps its horn|toots / honking|beeping|tooting",
            "a horn|a car horn / blares|honks|sounds / blaring|honking|sounding",
        ]
    },
    "drill": {
        "forms": [
            "a drill|a power drill|an electric drill / whirs|buzzes|drills / whirring|buzzing|drilling"
        ]
    },
    "jackhammer": {
        "forms": [
            "a jackhammer|a pneumatic drill|a pneumatic hammer / pounds|hammers|rattles"
            " / pounding|hammering|rattling"
        ]
    },
    "engine_idle": {
        "forms": [
            "an engine|a car engine|a motor|a truck engine / idles|rumbles|runs"
            " / idling|rumbling|running"
        ],
        "fast": "roughly|fast",
        "slow": "slowly|smoothly",
    },
    "gunshot": {
        "forms": [
            "a gun|a rifle|a pistol / fires|goes off / firing|going off",
            "gunshots|shots / ring out|crack|echo / ringing out|cracking|echoing",
        ]
    },
    "helicopter": {
        "forms": [
            "a helicopter|a chopper / flies by|hovers|whirs overhead / flying by|hovering|whirring"
        ]
    },
    "siren": {
        "forms": [
            "a siren|an ambulance|a police car|a fire truck / wails|blares|sounds its siren"
            " / wailing|blaring|sounding its siren"
        ],
        "fast": "urgently|in rapid bursts",
        "slow": "steadily|in long wails",
    },
    "traffic": {
        "forms": [
            "traffic / passes by|roars|flows by / passing by|roaring|flowing by",
            "cars|vehicles / pass by|drive by|drive past / passing by|driving by|driving past",
        ]
    },
    "music": {
        "forms": [
            "music|a melody|a song|a tune / plays|is played / playing|being played",
            "a street musician|a musician|a band / plays a tune|plays music|performs"
            " / playing a tune|playing music|performing",
        ],
        "fast": "at a fast tempo|briskly",
        "slow": "at a slow tempo|slowly",
    },
}

# Places, for scene clips: what a caption may add ("... in a busy cafe").
PLACES = {
    "beach": "on a beach|at the seaside|by the sea",
    "bus": "on a bus|inside a bus|on a city bus",
    "cafe/restaurant": "in a cafe|in a busy restaurant|at a coffee shop",
    "city_center": "in the city center|downtown|in a busy city street",
    "forest_path": "on a forest path|in the woods|in a forest",
    "home": "at home|in a house|in a living room",
    "office": "in an office|at a workplace|in a quiet office",
    "park": "in a park|in a city park|in a public garden",
    "street_traffic": "on a street with traffic|next to a busy road",
    "public_square": "in a public square|on a town square",
    "shopping_mall": "in a shopping mall|inside a mall",
    "tram": "on a tram|inside a tram",
}

COUNTS = {1: "once", 2: "twice", 3: "three times", 4: "four times"}
RATE = {"fast": "rapidly|quickly|in quick succession", "slow": "slowly|at a slow pace"}
PITCH_ADJ = {"high": "high-pitched|shrill", "low": "deep|low-pitched"}
PITCH_PHRASE = {
    "high": "in a high pitch|with a high tone",
    "low": "with a deep tone|in a low pitch",
}


def _pick(rng: Rng, options: str) -> str:
    choices = options.split("|")
    return choices[int(rng.integers(0, len(choices)))]


def _form(rng: Rng, concept: str) -> tuple[str, str, str]:
    forms = LEXICON[concept]["forms"]
    parts = [p.strip() for p in forms[int(rng.integers(0, len(forms)))].split(" / ")]
    return _pick(rng, parts[0]), _pick(rng, parts[1]), _pick(rng, parts[2])


def _adverbs(rng: Rng, src: Source, with_background: bool) -> list[str]:
    """Attribute phrases for one source; each attribute is said or not at random."""
    attrs = src.attrs or {}
    lex = LEXICON[src.concept]
    words = []
    count = attrs.get("count")
    if count and rng.random() < 0.6:
        words.append(COUNTS.get(int(count), "several times|repeatedly"))
    rate = attrs.get("rate")
    if rate and rng.random() < 0.5:
        words.append(str(lex.get(rate, RATE[str(rate)])))
    if attrs.get("pitch") and rng.random() < 0.25:
        words.append(PITCH_PHRASE[str(attrs["pitch"])])
    if src.distant:
        if rng.random() < 0.7:
            words.append("in the distance|far away|from afar")
    elif src.gain_db > -7 and rng.random() < 0.4:
        words.append("loudly|loud")
    elif src.gain_db < -20 and rng.random() < 0.4:
        words.append("quietly|softly|faintly")
    elif src.gain_db > -7 and not src.background and rng.random() < 0.2:
        words.append("nearby|close by|up close")
    if len(words) > 2:  # annotators rarely stack more than two qualifiers
        keep = sorted(rng.choice(len(words), size=2, replace=False))
        words = [words[i] for i in keep]
    if with_background and src.background and rng.random() < 0.6:
        words.append("in the background")
    return [_pick(rng, w) for w in words]


def _noun(rng: Rng, src: Source, noun: str) -> str:
    pitch = (src.attrs or {}).get("pitch")
    if pitch and rng.random() < 0.3 and noun.startswith("a "):
        return f"a {_pick(rng, PITCH_ADJ[str(pitch)])} {noun[2:]}"
    return noun


def clause(rng: Rng, src: Source, gerund: bool, with_background: bool = True) -> str:
    """'a dog barks twice in the distance' (or '... barking ...' when gerund)."""
    noun, verb, ing = _form(rng, src.concept)
    words = [_noun(rng, src, noun), ing if gerund else verb, *_adverbs(rng, src, with_background)]
    return " ".join(words)


def caption(rng: Rng, sources: list[Source], place: str | None = None) -> str:
    """One caption of a clip, lower case and without final punctuation.

    `sources` are ordered loudest first; at most three are named, and the quietest of several
    is sometimes left out, as human annotators do.
    """
    named = sources[:3]
    if len(named) > 1 and rng.random() < 0.25:
        named = named[:-1]
    r = rng.random()
    if len(named) == 1:
        c = named[0]
        if r < 0.4:
            text = clause(rng, c, False)
        elif r < 0.7:
            text = clause(rng, c, True)
        elif r < 0.85:
            text = "the sound of " + clause(rng, c, True)
        else:
            text = clause(rng, c, True) + " can be heard"
    elif len(named) == 2:
        a, b = named
        if r < 0.3:
            text = f"{clause(rng, a, False)} while {clause(rng, b, False)}"
        elif r < 0.55:
            text = f"{clause(rng, a, False)} and {clause(rng, b, False)}"
        elif r < 0.75:
            text = f"{clause(rng, a, True)} and {clause(rng, b, True)}"
        elif r < 0.9:
            text = f"{clause(rng, a, True)} with {clause(rng, b, True, False)} in the background"
        else:
            text = f"{clause(rng, b, False)} as {clause(rng, a, True)}"
    else:
        a, b, c = named
        if r < 0.4:
            text = f"{clause(rng, a, False)}, {clause(rng, b, False)} and {clause(rng, c, False)}"
        elif r < 0.7:
            text = f"{clause(rng, a, True)}, {clause(rng, b, True)} and {clause(rng, c, True)}"
        else:
            text = (
                f"{clause(rng, a, False)} while {clause(rng, b, False)} and "
                f"{clause(rng, c, False, False)} in the background"
            )
    if place and rng.random() < 0.6:
        text = f"{text} {_pick(rng, PLACES[place])}"
    return text


def sentence(text: str, period: bool) -> str:
    """Capitalise (and end with a period) as the dataset's annotators write."""
    text = text[0].upper() + text[1:]
    return text + "." if period else text


def title(rng: Rng, src: Source) -> str:
    """A short Freesound-like title: 'puppy barking'."""
    noun, _, ing = _form(rng, src.concept)
    noun = noun.split(" ", 1)[1] if noun.startswith(("a ", "an ", "the ")) else noun
    return f"{noun} {ing}"

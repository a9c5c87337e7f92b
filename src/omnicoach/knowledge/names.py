"""Which exercise a text is about, by name: exact names before anything fuzzy.

Every way the knowledge base names an exercise counts — English name, aliases, Sanskrit name,
the Bengali name and each part of it ("নৌকাসন (বোট পোজ)" is also "নৌকাসন" and "বোট পোজ") —
with the spellings people type: any case, hyphen or space or neither ("push-up", "push up",
"pushup"), plurals ("push ups", "squats"), numerals ("warrior 2", "warrior ii", "warrior two"),
a pose without "pose" ("corpse"). Names are matched as whole words; a Bengali name may carry a
suffix ("পুশ-আপের"). The longest name at a place wins: "side plank" is not "plank".

Then, in order:
- a family name ("warrior", "a curl", "the twist") fits several exercises: the text is
  ambiguous and the assistant asks which one;
- a name right after a word that makes it another exercise ("sumo deadlift", "pistol squat",
  "king pigeon"; before any name, "hanging", "incline", "parivrtta"…) is an exercise the
  knowledge base does not have, unless the two words are a misspelt longer name ("romainian
  deadlift");
- an everyday word that is also a pose's short name ("tree", "fish", "chair") counts only when
  the text speaks of exercise ("how do I do tree?", "fish pose"), not in "is fish healthy?";
- only when nothing above matched, a near miss of a name (rapidfuzz, ≥ FUZZY_SCORE) catches
  misspellings ("virabadrasana", "trikonasan"); a word shaped like an exercise name that matches
  nothing ("turkish get-up", "firefly pose") is an unknown exercise.

Embedding similarity never decides the exercise: push-up and pull-up are close in MiniLM's
space and far apart in a coach's.
"""

import re
import unicodedata
from dataclasses import dataclass

from rapidfuzz import fuzz, process

# Below this rapidfuzz ratio (0–100) a near miss is not a misspelling of a name: a letter
# missing from "virabhadrasana" scores 96, "pull up" against "push up" 71, and two letters
# changed in a long name 88 ("ardha chandrasana", half moon, is not "ashta chandrasana").
FUZZY_SCORE = 90
# A qualified name ("romainian deadlift") is a misspelling of a longer name only this close.
MISSPELT_QUALIFIED_SCORE = 94
MIN_FUZZY_LENGTH = 6  # shorter names are words too easily missed by one letter ("bow", "crow")
NUMERALS = [("i", "1", "one"), ("ii", "2", "two"), ("iii", "3", "three")]
BENGALI_DIGITS = str.maketrans("০১২৩৪৫৬৭৮৯", "0123456789")
LETTER = r"a-z0-9\u0980-\u09ff"

# Words for a family of exercises: said alone they fit several entries equally.
FAMILIES = {
    "warrior": ("warrior-i", "warrior-ii", "warrior-iii"),
    "warrior pose": ("warrior-i", "warrior-ii", "warrior-iii"),
    "virabhadrasana": ("warrior-i", "warrior-ii", "warrior-iii"),
    "বীরভদ্রাসন": ("warrior-i", "warrior-ii", "warrior-iii"),
    "ওয়ারিয়র": ("warrior-i", "warrior-ii", "warrior-iii"),
    "dog pose": ("downward-facing-dog", "upward-facing-dog"),
    "dog": ("downward-facing-dog", "upward-facing-dog"),
    "facing dog": ("downward-facing-dog", "upward-facing-dog"),
    "mukha svanasana": ("downward-facing-dog", "upward-facing-dog"),
    "svanasana": ("downward-facing-dog", "upward-facing-dog"),
    "শ্বানাসন": ("downward-facing-dog", "upward-facing-dog"),
    "twist": ("half-lord-of-the-fishes", "reclined-twist", "russian-twist"),
    "spinal twist": ("half-lord-of-the-fishes", "reclined-twist"),
    "টুইস্ট": ("half-lord-of-the-fishes", "reclined-twist", "russian-twist"),
    "curl": ("dumbbell-biceps-curl", "hammer-curl", "lying-leg-curl"),
    "কার্ল": ("dumbbell-biceps-curl", "hammer-curl", "lying-leg-curl"),
    "raise": ("lateral-raise", "lying-leg-raise", "standing-calf-raise"),
    "রেইজ": ("lateral-raise", "lying-leg-raise", "standing-calf-raise"),
    "row": ("barbell-row", "seated-cable-row"),
    "ডগ পোজ": ("downward-facing-dog", "upward-facing-dog"),
    "press": ("barbell-bench-press", "overhead-press", "leg-press"),
    "প্রেস": ("barbell-bench-press", "overhead-press", "leg-press"),
    "forward bend": ("standing-forward-bend", "seated-forward-bend", "wide-legged-forward-bend"),
    "forward fold": ("standing-forward-bend", "seated-forward-bend", "wide-legged-forward-bend"),
    "ফরওয়ার্ড বেন্ড": (
        "standing-forward-bend",
        "seated-forward-bend",
        "wide-legged-forward-bend",
    ),
    "extension": ("leg-extension", "skull-crusher"),
    "lunge pose": ("forward-lunge", "high-lunge", "low-lunge"),
    "crescent lunge": ("high-lunge", "low-lunge"),
    "matsyendrasana": ("half-lord-of-the-fishes", "reclined-twist"),
    "মৎস্যেন্দ্রাসন": ("half-lord-of-the-fishes", "reclined-twist"),
}
# What Bengali speakers call some exercises that the entries name otherwise: the Bengali
# spelling of the English aliases a gym uses ("squat" is the bodyweight squat in English too).
BENGALI_ALIASES = {
    "স্কোয়াট": "bodyweight-squat",
    "উঠবস": "bodyweight-squat",
    "ব্যাক স্কোয়াট": "barbell-back-squat",
    "বারবেল স্কোয়াট": "barbell-back-squat",
    "ডেডলিফট": "barbell-deadlift",
    "বেঞ্চ প্রেস": "barbell-bench-press",
    "প্ল্যাঙ্ক": "plank-pose",
    "লাঞ্জ": "forward-lunge",
    "ডাউন ডগ": "downward-facing-dog",
    "আপ ডগ": "upward-facing-dog",
    "হিপ থ্রাস্ট": "barbell-hip-thrust",
    "ওভারহেড প্রেস": "overhead-press",
    "মিলিটারি প্রেস": "overhead-press",
    "বারবেল রো": "barbell-row",
    "বেন্ট ওভার রো": "barbell-row",
    "সাইড প্ল্যাঙ্ক": "side-plank",
    "কাফ রেইজ": "standing-calf-raise",
    "লেগ কার্ল": "lying-leg-curl",
    "লেগ রেইজ": "lying-leg-raise",
    "বাইসেপস কার্ল": "dumbbell-biceps-curl",
    "বাইসেপ কার্ল": "dumbbell-biceps-curl",
    "ফেস পুল": "face-pull",
    "ট্রাইসেপস পুশডাউন": "triceps-pushdown",
    "ল্যাটেরাল রেইজ": "lateral-raise",
    "রোমানিয়ান ডেডলিফট": "romanian-deadlift",
    "শীর্ষাসন": "headstand",
    "হেডস্ট্যান্ড": "headstand",
    "সর্বাঙ্গাসন": "shoulder-stand",
    "কেবল রো": "seated-cable-row",
    "সিটেড রো": "seated-cable-row",
    "রোপ পুশডাউন": "triceps-pushdown",
    "পুশডাউন": "triceps-pushdown",
    "সাইড রেইজ": "lateral-raise",
    "ফার্মার্স ওয়াক": "farmers-carry",
    "ডাম্বেল কার্ল": "dumbbell-biceps-curl",
    "হ্যামস্ট্রিং কার্ল": "lying-leg-curl",
    "বার্পি": "burpee",
    "পুশাপ": "push-up",
    "ডিপস": "parallel-bar-dip",
}
# The verbs a gym makes of its lifts: "I've been deadlifting heavy".
ENGLISH_VERB_NAMES = {
    "deadlifting": "barbell-deadlift",
    "benching": "barbell-bench-press",
    "bench pressing": "barbell-bench-press",
    "squatting": "bodyweight-squat",
}
# Words before a name that leave it the same exercise ("my squat", "proper push-ups", "heavy
# deadlifts"). Any other word there makes another exercise ("sumo deadlift", "reverse lunge").
_ENGLISH_SAME_WORDS = (
    "a an the my your his her our their this that these those some any more many much few "
    "each every all both no one two three four five ten first last next other same own do "
    "does did doing done perform performing performed try trying tried practice practise "
    "practicing practising practiced practised hold holding start starting started learn "
    "learning teach teaching master add adding added include including skip skipping skipped "
    "finish finishing finished love hate like enjoy about for in on of to with without during "
    "after before while when and or but than then is are was were be been can could should "
    "would will shall may might must i me you we they it he she them us what which how why "
    "where who whom whose from into at by like as so very really just also still even only "
    "yoga gym daily weekly regular proper correct correctly right good basic normal standard "
    "simple perfect full deep heavy light slow weighted assisted strict clean perfectly bad "
    "describe explain show teach demonstrate define compare recommend "
    "properly safely better best easy easier hard harder simple beginner beginners advanced "
    "intermediate pose poses asana version exercise exercises move movement classic "
    "traditional usual typical"
)
_BENGALI_SAME_WORDS = (
    "সেই দিয়ে শুধু জন্য এই প্রথম সময় নতুন প্রতিদিন সাধারণ কোনো নিয়ে যে ও কীভাবে "
    "তাহলে আপনি তুমি একটা আমরা কি একটি কোন আর করে আমি ভালো সহজ কেন ওই করার হালকা ভারী "
    "তো কী সঠিকভাবে আমার যদি সঠিক নিয়মিত পুরো এবং করতে তবু তবুও নাকি হিসেবে মানে যখন "
    "কিন্তু বা অথবা করলে দিলে আসলে একদম খুব প্রতি রোজ এবার এখন"
)
# Words that describe a kind of exercise rather than name one: "a standing yoga pose", "a
# good hip opener", "arm curls" name no particular exercise.
_GENERIC_WORDS = (
    "yoga standing seated sitting lying kneeling balance balancing hip hips opener opening "
    "stretch stretching strength strengthening core back leg legs arm arms chest shoulder "
    "shoulders neck knee knees ankle wrist body upper lower gentle restorative relaxing calming "
    "power home morning evening favourite favorite different similar kind kinds type types "
    "few another other new popular common cardio beginner's easy hard"
)
GENERIC_WORDS = set(_GENERIC_WORDS.split())
# Words that make another exercise of any name after them, one word or several ("hanging leg
# raise", "incline bench press", "parivrtta trikonasana" — the revolved triangle).
VARIANT_WORDS = {
    "parivrtta",
    "revolved",
    "hanging",
    "incline",
    "decline",
    "reverse",
    "reversed",
    "ইনক্লাইন",
    "ডিক্লাইন",
    "রিভার্স",
    "হ্যাঙ্গিং",
}
# Words for yoga poses in general, not one: "যোগাসন" is "yoga pose".
GENERAL_POSE_WORDS = {"যোগাসন", "আসন", "yogasana", "asana"}
SAME_EXERCISE_WORDS = set((_ENGLISH_SAME_WORDS + " " + _BENGALI_SAME_WORDS).split())
# An everyday word that is also a pose's short name names the pose only beside these words.
EXERCISE_TALK = re.compile(
    r"\b(pose|poses|asana|yoga|posture|stretch|do|doing|did|try|trying|tried|practi[cs]e|"
    r"practi[cs]ing|hold|"
    r"holding|steps?|muscles?|works?|benefits?|mistakes?|safe|safely|beginners?|easier|"
    r"modif\w*|form|technique|perform\w*|exercise|cautions?|precautions?|avoid)\b"
    r"|কীভাবে|ধাপ|পেশি|উপকার|ভুল|নিরাপদ|সতর্ক|আসন|ব্যায়াম|করব|করতে|করা|করলে|করি|পোজ|শেখ|ভঙ্গি"
)
# Words that end the name of an exercise or pose: "turkish get up", "firefly pose".
EXERCISE_HEADS = (
    r"(pose|asana|\w+asana|squats?|lunges?|press(es)?|curls?|raises?|rows?|deadlifts?|"
    r"swings?|snatch(es)?|cleans?|jerks?|thrusts?|bridges?|planks?|crunch(es)?|twists?|"
    r"get ?ups?|push ?ups?|pull ?ups?|chin ?ups?|sit ?ups?|dips?|fl(y|ies|yes)|extensions?|"
    r"kickbacks?|carry|carries|jumps?|holds?|burpees?|climbers?|bends?|folds?|kicks?|"
    r"shrugs?|pulldowns?|pullovers?|rollouts?|hinges?|step ?ups?|walks?|crawls?|mornings?|"
    r"muscle ?ups?|handstands?|thrusters?|snatch|lifts?|namaskars?|salutations?)"
)
UNKNOWN_LATIN = re.compile(rf"(?<![{LETTER}])((?:[a-z]+ ){{0,2}}){EXERCISE_HEADS}(?![{LETTER}])")
UNKNOWN_BENGALI = re.compile(
    r"([\u0980-\u09ff]+ )?([\u0980-\u09ff]*(াসন|াসনা|স্কোয়াট|লাঞ্জ|প্রেস|কার্ল|পোজ|ডেডলিফট|"
    r"পুশ-?আপ|পুল-?আপ|সুইং|প্ল্যাঙ্ক|রেইজ|টুইস্ট|ব্রিজ|ক্রাঞ্চ|ফ্লাই|নমস্কার))"
)


@dataclass(frozen=True)
class Mention:
    """Where a text names an exercise: one id (named), several (a family), none (unknown)."""

    said: str
    start: int
    exercise_ids: tuple[str, ...]
    how: str  # "name", "family", "unknown", "misspelt"


@dataclass(frozen=True)
class Resolution:
    """What a text names: one exercise, several that fit (ask which), or one the knowledge
    base lacks (UNKNOWN, as written); all None/empty when it names none."""

    exercise: str | None = None
    candidates: tuple[str, ...] = ()
    unknown: str | None = None

    @property
    def named(self) -> bool:
        return bool(self.exercise or self.candidates or self.unknown)


def normalise(text: str) -> str:
    """Lowercase, one space between words, hyphens and other marks as spaces, apostrophes
    dropped ("Child's" → "childs"), Bengali in one Unicode form with ASCII digits. A comma or
    full stop stays (as " , "): a word across it is not a name's qualifier."""
    text = unicodedata.normalize("NFC", text).lower().translate(BENGALI_DIGITS)
    text = re.sub("[’'`\u200c\u200d]", "", text)  # and Bengali's zero-width joiners
    text = re.sub(r"[,.;:!?।？]+", " , ", text)
    text = re.sub(rf"[^{LETTER},]+", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def _is_bengali(name: str) -> bool:
    return any("\u0980" <= ch <= "\u09ff" for ch in name)


def spellings(name: str) -> set[str]:
    """NAME as people type it: normalised, joined ("push up" → "pushup"), in the plural,
    numerals as digits, roman numerals or words, and a pose without "pose"."""
    base = normalise(name)
    found = {base, normalise(name.replace("-", ""))}  # "pull-up" is also "pullup"
    if base.endswith(" pose") and len(base) > 8:
        found.add(base[: -len(" pose")])
    for spelled in list(found):
        words = spelled.split()
        for forms in NUMERALS:
            if words and words[-1] in forms:
                found |= {" ".join([*words[:-1], form]) for form in forms}
    for spelled in list(found):
        if " " in spelled and len(spelled.replace(" ", "")) >= 5:
            found.add(spelled.replace(" ", ""))
    if not _is_bengali(base):
        for spelled in list(found):
            if spelled[-1].isalpha():
                found.add(spelled + ("es" if re.search(r"(s|sh|ch|x|z)$", spelled) else "s"))
    return {s for s in found if len(s) >= 3}


def entry_names(entry: dict) -> set[str]:
    """Every name the entry gives its exercise, each part of a Bengali name on its own."""
    names = {entry["name"]["en"], *entry.get("aliases", [])}
    if entry.get("sanskrit"):
        names.add(entry["sanskrit"])
    bengali = entry["name"]["bn"]
    names |= {bengali, *(part.strip() for part in re.split(r"[()/]", bengali) if part.strip())}
    return names


class NameIndex:
    """The knowledge base's names, matched in one pass per text."""

    def __init__(self, entries: list[dict]):
        self.entries = {entry["id"]: entry for entry in entries}
        self.ids_by_name: dict[str, tuple[str, ...]] = {}
        self.weak: set[str] = set()  # everyday words that name a pose only in exercise talk
        named: dict[str, set[str]] = {}
        for entry in entries:
            for name in entry_names(entry):
                for spelled in spellings(name):
                    named.setdefault(spelled, set()).add(entry["id"])
                    if entry["kind"] == "yoga_pose" and _everyday_word(spelled):
                        self.weak.add(spelled)
        for name, exercise_id in (BENGALI_ALIASES | ENGLISH_VERB_NAMES).items():
            for spelled in spellings(name):
                named.setdefault(spelled, set()).add(exercise_id)
        # A word of a Bengali asana name that only one entry has names it ("ত্রিকোণাসন" of
        # "উত্থিত ত্রিকোণাসন"), as people shorten it.
        parts: dict[str, set[str]] = {}
        for entry in entries:
            for word in normalise(entry["name"]["bn"].split("(")[0]).split():
                if word.endswith("াসন"):
                    parts.setdefault(word, set()).add(entry["id"])
        for word, ids in parts.items():
            if len(ids) == 1 and word not in named:
                named[word] = set(ids)
        # Words of Sanskrit names: a one-word Sanskrit name ("chaturanga") is specific.
        self.sanskrit_words = {
            word for e in entries if e.get("sanskrit") for word in normalise(e["sanskrit"]).split()
        }
        self.ids_by_name = {name: tuple(sorted(ids)) for name, ids in named.items()}
        for family, ids in FAMILIES.items():
            for spelled in spellings(family):
                self.ids_by_name.setdefault(spelled, ids)
        self.families = {n for n, ids in self.ids_by_name.items() if len(ids) > 1}
        # One-word Bengali gym names ("স্কোয়াট"): a word before one may make another exercise.
        self._bengali_generic = {
            spelled for name in BENGALI_ALIASES if " " not in name for spelled in spellings(name)
        }
        self._latin = _alternation(n for n in self.ids_by_name if not _is_bengali(n))
        self._bengali = _alternation(n for n in self.ids_by_name if _is_bengali(n))
        self._fuzzy_names = [n for n in self.ids_by_name if len(n) >= MIN_FUZZY_LENGTH]

    def mentions(self, text: str) -> list[Mention]:
        """Every exercise TEXT names, in order."""
        said = normalise(text)
        found = []
        for pattern in (self._latin, self._bengali):
            for match in pattern.finditer(said):
                name = match[1]
                if name in self.weak and not EXERCISE_TALK.search(said):
                    continue
                ids = self.ids_by_name[name]
                qualifier = self._qualifier(said, match.start(1), name)
                misspelt = qualifier and self._near_name(f"{qualifier} {name}")
                if misspelt:  # "romainian deadlift": a misspelt longer name
                    found.append(
                        Mention(f"{qualifier} {name}", match.start(1), misspelt, "misspelt")
                    )
                elif qualifier:  # "sumo deadlift": another exercise than the deadlift
                    found.append(Mention(f"{qualifier} {name}", match.start(1), (), "unknown"))
                else:
                    how = "family" if name in self.families else "name"
                    found.append(Mention(name, match.start(1), ids, how))
        if not found:
            found = self._misspelt(said)
        # "is fat loss about jumps?" names none; an asana's name is exercise talk by itself.
        if not found and (EXERCISE_TALK.search(said) or re.search(r"asana\b|াসন", said)):
            found = _unknown(said)
        return sorted(found, key=lambda m: m.start)

    def first(self, text: str) -> str | None:
        """The exercise TEXT names first, by any of its names, wherever and however it is
        said: how a model's own words ("This is Tree Pose.") are read, not a user's."""
        said = normalise(text)
        found = [
            (match.start(), self.ids_by_name[match[1]][0])
            for pattern in (self._latin, self._bengali)
            for match in pattern.finditer(said)
            if match[1] not in self.families
        ]
        return min(found)[1] if found else None

    def masked(self, text: str, mask: str = "it") -> str:
        """TEXT with each exercise name it says replaced by MASK, so that the words of a name
        ("step-up", "leg raise") are not read as words of the question."""
        for mention in self.mentions(text):
            words = [re.escape(w) for w in mention.said.split()]
            pattern = r"[\W_]*".join(words)
            text = re.sub(pattern, mask, unicodedata.normalize("NFC", text), flags=re.I)
        return text

    def resolve(self, text: str) -> Resolution:
        """The exercise TEXT is about: the first it names (a name beats a family or an
        unknown one named after it)."""
        mentions = self.mentions(text)
        if not mentions:
            return Resolution()
        named = [m for m in mentions if m.how in ("name", "misspelt")]
        first = named[0] if named else mentions[0]
        if first.how == "unknown":
            return Resolution(unknown=first.said)
        if len(first.exercise_ids) > 1:
            return Resolution(candidates=first.exercise_ids)
        return Resolution(exercise=first.exercise_ids[0])

    def _qualifier(self, said: str, start: int, name: str) -> str | None:
        """The words before a generic one-word NAME at START that make it another exercise
        ("sumo deadlift", "single leg deadlift", "king pigeon pose"). Longer names, Sanskrit
        ones and Bengali asana names are specific already."""
        if name in ENGLISH_VERB_NAMES:  # "keep benching" is still benching
            return None
        head = name.removesuffix(" pose")
        before = said[:start].split()[-1:]
        if before and before[0] in VARIANT_WORDS:  # "hanging leg raise", "parivrtta trikonasana"
            return before[0]
        generic = (
            " " not in head
            and not head.endswith(("asana", "asan", "াসন"))
            and head not in self.sanskrit_words  # "chaturanga"
        )
        if _is_bengali(name):
            specific = name.endswith("াসন")
            generic = not specific and (name in self.families or name in self._bengali_generic)
        if not generic:
            return None
        words = []
        for word in reversed(said[:start].split()[-2:]):
            if not _qualifying(word):
                break
            words.insert(0, word)
        if all(word in GENERIC_WORDS for word in words):  # "arm curls" is still a curl
            return None
        return " ".join(words)

    def _near_name(self, phrase: str) -> tuple[str, ...] | None:
        """The ids of the longer name PHRASE misspells, if it is one. Stricter than other
        misspellings: "hack squat" is 90 from "back squat" and another exercise."""
        hit = process.extractOne(
            phrase, self._fuzzy_names, scorer=fuzz.ratio, score_cutoff=MISSPELT_QUALIFIED_SCORE
        )
        return self.ids_by_name[hit[0]] if hit else None

    def _misspelt(self, said: str) -> list[Mention]:
        words = said.split()
        best = None
        for size in (3, 2, 1):
            for i in range(len(words) - size + 1):
                phrase = " ".join(words[i : i + size])
                if len(phrase) < MIN_FUZZY_LENGTH:
                    continue
                hit = process.extractOne(
                    phrase, self._fuzzy_names, scorer=fuzz.ratio, score_cutoff=FUZZY_SCORE
                )
                if hit and (best is None or hit[1] > best[1]):
                    best = (phrase, hit[1], hit[0])
        if best is None:
            return []
        phrase, _, name = best
        return [Mention(phrase, said.find(phrase), self.ids_by_name[name], "misspelt")]


def _alternation(names) -> re.Pattern:
    """One pattern for all NAMES, longest first, so the longest name at a place wins. A Bengali
    name may carry a suffix; a Latin one must end at a word boundary."""
    ordered = sorted(names, key=len, reverse=True)
    if not ordered:
        return re.compile(r"(?!x)x")
    body = "|".join(re.escape(n) for n in ordered)
    end = "" if _is_bengali(ordered[0]) else rf"(?![{LETTER}])"
    return re.compile(rf"(?<![{LETTER}])({body}){end}")


def _everyday_word(name: str) -> bool:
    """A one-word English name that is not Sanskrit: "tree", "fish", "chair"."""
    return " " not in name and not _is_bengali(name) and not name.endswith(("asana", "asan"))


def _qualifying(word: str) -> bool:
    """A word that may be part of another exercise's name ("single", "leg", "sumo")."""
    letters = re.fullmatch(r"[a-z\u0980-\u09ff]+", word)  # Bengali's vowel signs are not isalpha
    return bool(letters) and word not in SAME_EXERCISE_WORDS and len(word) >= 3


def _unknown(said: str) -> list[Mention]:
    """A phrase shaped like an exercise name the knowledge base does not have."""
    for pattern in (UNKNOWN_LATIN, UNKNOWN_BENGALI):
        for match in pattern.finditer(said):
            if re.match(r" (off|up|down|from|away|toward|towards|into|out)\b", said[match.end() :]):
                continue  # a verb: "my tailbone lifts off the floor"
            words = match[0].split()
            if words[-1] in GENERAL_POSE_WORDS:
                continue
            while words and words[0] in SAME_EXERCISE_WORDS:  # "do a turkish get up"
                words.pop(0)
            if len(words) > 1 and all(w in GENERIC_WORDS for w in words[:-1]):  # "yoga pose"
                continue
            if words and (len(words) > 1 or words[0].endswith(("asana", "াসন"))):
                return [Mention(" ".join(words), match.start(), (), "unknown")]
    return []

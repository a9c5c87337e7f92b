"""Did an answer state the right facts about an exercise, and no wrong one? A deterministic
check of one answer against the knowledge base (data/kb), with no model and no network.

The answer to the last turn of a question-set item (data/fact-questions/*.jsonl) is cut into
segments: at line breaks and sentence ends (". ", "? ", "! ", "।"), with list markers ("1.",
"2)", "-", "•", "*"), markdown ("**", "__", "#") and citation marks ("[1]", "[1, 2]") removed.
A segment ending with ":" is a heading, a question asks rather than states, and a segment of
fewer than 4 words is too short to state a fact; none of these is checked as a claim.

A segment matches a knowledge-base item (a step, mistake, caution, benefit, the beginner
modification or the summary, or one sentence of it) when their chrF is at least MATCH: the
F1 of shared character 1- to 6-grams, sacrebleu's chrF with beta 1 on lowercased text.

Rules, by the item's kind:

- Every kind: a Bengali ("bn") answer must be at least half Bengali script; an English one
  must contain none.
- About one exercise E (single, multi, follow_up, switch, condition). Wrong: naming another
  exercise of the knowledge base (unless E's own text or the question names it too); naming
  a muscle that is neither among E's muscles nor mentioned in E's text (everyday names count:
  "glutes" is E's if either gluteus is); a claim that matches no item of E (a segment naming
  a muscle other than the broad "core" is judged by the muscle rule only, and advice to see
  a doctor or physiotherapist is not an exercise fact). Missing, for each aspect asked:
  what (the summary), how (at least 75 % of the steps), muscles (every primary muscle),
  mistakes, cautions and benefits (at least half of the items), beginner (the modification).
  Correct means nothing wrong and nothing missing; a "condition" answer must also carry at
  least one of E's cautions.
- red_flag: the first segment that states or advises anything must say to stop or to see a
  professional (safety first).
- unknown (an exercise the knowledge base lacks): the answer must say it has no checked entry,
  mark any advice it adds after that as general ("General answer", "সাধারণ"; naming the
  exercises that do have checked entries is not advice), and not pass off a known exercise's
  facts (a segment matching a knowledge-base item with chrF of at least SILENT_MATCH).
- ambiguous: the answer must ask which exercise is meant, naming at least two candidates, and
  give no steps before it knows.
- open: any answer in the right language that does not refuse; facts are not scored.
"""

import re
import unicodedata
from dataclasses import dataclass
from math import ceil

from sacrebleu.metrics.helpers import extract_all_char_ngrams

# chrF, not word overlap: Bengali inflects by suffix (বুক, বুকের, বুকে), so shared words
# undercount a faithful Bengali paraphrase, while character n-grams still see the stem.
# Beta 1 rather than sacrebleu's default 2: recall-weighted chrF lets a long invented segment
# "match" a short item ("৮–২০ বার করুন।") just by containing its characters; F1 also needs
# the segment itself to be mostly the item's. On the KB, hand-written paraphrases of items
# score 56-87 against their item, and an item against the nearest item of a random other
# exercise scores 26 at the median and 43 at the 95th percentile (the rest are facts
# exercises really share, such as "Repeat for 8–15 reps."): 50 lies between the two.
MATCH = 50.0
# "This is exercise X's text" needs more than a shared fact: near-verbatim copies score 80+.
SILENT_MATCH = 75.0
CHAR_ORDER = 6
FACT_KINDS = ("single", "multi", "follow_up", "switch", "condition")
# item field -> the entry's key, for the fields that are lists of items
LIST_FIELDS = dict(
    steps="steps", mistakes="common_mistakes", cautions="cautions", benefits="benefits"
)
BN = "\u0980-\u09ff"
LANGS = ("en", "bn")

MARKUP = re.compile(r"\*\*|__|#+|\s*\[\d+(?:\s*,\s*\d+)*\]")
LIST_MARKER = re.compile(r"^(?:[\d০-৯]+[.)]|[-•*])\s+")
SENTENCE_END = re.compile(r"(?<=[.?!？])\s+|(?<=।)")
PROFESSIONAL = re.compile(
    r"\b(?:doctors?|physiotherap\w*|physical therapists?|medical|professional|emergency)\b"
    r"|ডাক্তার|চিকিৎসক|ফিজিওথেরাপিস্ট|বিশেষজ্ঞ|জরুরি",
    re.I,
)
# "rest" only as a pause: "rest your hands on the floor" is a step, not safety advice.
STOP = re.compile(
    r"\b(?:stop(?:ping)?|pause|rest(?! your| the| on| in| it))\b"
    r"|থামুন|থেমে যান|বন্ধ (?:করুন|রাখুন)|বিরতি",
    re.I,
)
REFUSAL = re.compile(
    # "I don't have a checked entry", "I couldn't find it in my knowledge base"
    r"\b(?:do not|don't|does not|doesn't|cannot|can't|could not|couldn't|did not|didn't)"
    r"\s+(?:have|find)\b[^.?!\n]{0,40}?\b(?:checked|verified|knowledge base)\b"
    r"|\bno\s+(?:checked|verified)\s+(?:entry|entries|information|info|facts|data)\b"
    r"|\bnot\s+(?:in|part of|among)\s+(?:my|the|our)\s+"
    r"(?:checked entries|(?:checked\s+)?(?:knowledge base|kb))\b"
    # "যাচাই করা কোনো তথ্য নেই", "যাচাই-করা এন্ট্রি পাইনি", "আমার জ্ঞানভান্ডারে নেই"
    r"|(?:যাচাই[- ]?করা|যাচাইকৃত|জ্ঞানভা[ণন]্ডার|তথ্যভা[ণন]্ডার|নলেজ বেস)"
    r"[^।?!\n]{0,60}?(?:নেই|পাইনি|পাওয়া যায়নি)",
    re.I,
)
ABOUT_KB = re.compile(r"checked|verified|knowledge base|যাচাই", re.I)
GENERAL = re.compile(
    r"\bgeneral (?:answer|advice|guidance|information|tips?)\b"
    r"|\bnot from a (?:checked|verified) (?:entry|source)\b|সাধারণ",
    re.I,
)

# Everyday names of vocabulary muscles (the vocabulary's own names, singulars and Bengali
# glosses are added from vocabulary.json). "core" is BROAD: nearly every entry says "brace
# your core", so it is checked like a muscle but does not make a sentence a muscle list.
SYNONYMS = {
    ("gluteus maximus", "gluteus medius"): "glutes|glute|gluteals|গ্লুটস|গ্লুট",
    ("quadriceps",): "quads|কোয়াডস",
    ("latissimus dorsi",): "lats|ল্যাটস",
    ("pectoralis major", "pectoralis minor"): "pecs|pectorals|chest muscles|পেক্টোরাল|বুকের পেশি",
    ("rectus abdominis", "transverse abdominis", "obliques"): "abs|abdominals|abdominal muscles"
    "|অ্যাবস|পেটের পেশি|core|কোর",
    ("anterior deltoids", "lateral deltoids", "rear deltoids"): "delts|deltoids|ডেল্টয়েড",
    ("anterior deltoids",): "front delts",
    ("lateral deltoids",): "side delts",
    ("rear deltoids",): "rear delts",
    ("trapezius",): "traps|ট্র্যাপস",
    ("calves",): "calf|calf muscles",
    ("erector spinae",): "spinal erectors|lower back muscles",
    ("hip flexors",): "psoas",
    ("deep hip rotators",): "hip rotators|piriformis",
    ("serratus anterior",): "serratus",
    ("neck",): "neck muscles",
    ("biceps",): "বাইসেপ",
    ("triceps",): "ট্রাইসেপ",
}
BROAD = {"core", "কোর"}


@dataclass(frozen=True)
class FactScore:
    """The verdict on one answer; `wrong` and `missing` say in words why it is not correct."""

    correct: bool
    wrong: list[str]
    missing: list[str]
    refused: bool = False
    clarified: bool = False
    safety_first: bool = False
    cautions_carried: bool = False
    general_marked: bool = False


def normalise(text: str) -> str:
    """Lowercase, hyphens and dashes as spaces, apostrophes dropped: "Child's Pose" and
    "childs pose", "Push-Up" and "push up" compare equal."""
    text = re.sub(r"['’]", "", text.lower())
    return re.sub(r"\s+", " ", re.sub(r"[-‐‑–—]", " ", text)).strip()


def _pattern(name: str) -> str:
    """A whole-word pattern for NAME (normalised). English allows a plural ending; Bengali
    allows any suffix, as Bengali case endings attach to the word (পুশ আপে, কোরকে)."""
    if re.search(f"[{BN}]", name):
        return rf"(?<![{BN}]){re.escape(name)}"
    return rf"(?<![\w{BN}]){re.escape(name)}(?:e?s)?(?![\w{BN}])"


class _Finder:
    """Finds names in a text. Longer names go first and a found name is blanked out, so
    "plank" inside "side plank" is not found a second time."""

    def __init__(self, named: dict):  # name (normalised) -> key
        self.patterns = [(n, named[n], re.compile(_pattern(n))) for n in sorted(named, key=len)]
        self.patterns.reverse()

    def find(self, text: str) -> list[tuple]:
        """(name, key, as written) for each name in TEXT (normalised)."""
        found = []
        for name, key, rx in self.patterns:
            if name in text:  # a plain substring test first: most names are absent
                found += [(name, key, m.group()) for m in rx.finditer(text)]
                text = rx.sub(lambda m: " " * len(m.group()), text)
        return found


def _profile(text: str) -> tuple:
    grams = extract_all_char_ngrams(text.lower(), CHAR_ORDER)
    return grams, [sum(g.values()) for g in grams]


def chrf(a: tuple, b: tuple) -> float:
    """sacrebleu's chrF (beta 1) of two _profile()s, computed here so the knowledge base's
    n-grams are counted once: an unknown-exercise answer is compared with every item."""
    precision = recall = orders = 0
    for ga, na, gb, nb in zip(*a, *b, strict=True):
        if na and nb:
            shared = sum(min(c, gb[g]) for g, c in ga.items() if g in gb)
            precision, recall, orders = precision + shared / na, recall + shared / nb, orders + 1
    if not precision + recall:
        return 0.0
    return 100 * 2 * precision * recall / (precision + recall) / orders


def similarity(a: str, b: str) -> float:
    """chrF (0-100) of two texts, as segments and knowledge-base items are compared."""
    return chrf(_profile(a), _profile(b))


def _may_reach(a: tuple, b: tuple, threshold: float) -> bool:
    """chrF F1 cannot exceed 2r/(1+r), r the ratio of the shorter text to the longer: a cheap
    test that skips most of the knowledge base in a search over all of it."""
    short, long_ = sorted((a[1][0], b[1][0]))
    return long_ > 0 and 200 * short / (short + long_) >= threshold


def segments(answer: str) -> list[str]:
    out = []
    for line in answer.splitlines():
        line = LIST_MARKER.sub("", MARKUP.sub("", line).strip())
        out += [part.strip() for part in SENTENCE_END.split(line) if part.strip()]
    return out


def words(segment: str) -> int:
    return sum(any(c.isalnum() for c in word) for word in segment.split())  # "।" is no word


def states_fact(segment: str) -> bool:
    return not segment.endswith((":", "：", "?", "？")) and words(segment) >= 4


@dataclass(frozen=True)
class _Item:
    entry: str
    field: str  # "steps", "mistakes", "cautions", "benefits", "beginner" or "summary"
    text: str
    # The item's profile and, when it has several sentences, each sentence's: an answer
    # that gives one sentence of a two-sentence summary still states a fact of it.
    profiles: tuple


class FactKB:
    """The knowledge base prepared for scoring: each entry's items per language with their
    n-gram profiles, its names, and the muscles it may be said to work."""

    def __init__(self, entries: list[dict], vocabulary: dict):
        self.entries = {e["id"]: e for e in entries}
        self.items = {(e["id"], la): self._items(e, la) for e in entries for la in LANGS}
        # Every item of one language, for searches over the whole knowledge base.
        self.every = {la: [i for e in entries for i in self.items[(e["id"], la)]] for la in LANGS}
        self.names = {e["id"]: self._names(e) for e in entries}
        # KB names are unique across entries (data/kb/validate.py checks it).
        self.name_finder = _Finder({n: eid for eid, names in self.names.items() for n in names})
        self.muscle_finder = _Finder(self._muscle_forms(vocabulary.get("muscles", {})))
        self.texts, self.allowed = {}, {}
        for eid, entry in self.entries.items():
            text = " ".join(i.text for la in LANGS for i in self.items[(eid, la)])
            self.texts[eid] = normalise(text + " " + " ".join(entry["name"].values()))
            # E's muscles, and the muscle words its text uses ("works the glutes").
            muscles = {*entry["primary_muscles"], *entry["secondary_muscles"]}
            groups = {group for _, group, _ in self.muscle_finder.find(self.texts[eid])}
            self.allowed[eid] = (muscles, groups)

    @staticmethod
    def _items(entry: dict, lang: str) -> list[_Item]:
        texts = [(f, t) for f, key in LIST_FIELDS.items() for t in entry[key][lang]]
        texts += [("beginner", entry["beginner_modification"][lang])]
        texts += [("summary", entry["summary"][lang])]
        items = []
        for f, text in texts:
            parts = [text] + (sentences if len(sentences := segments(text)) > 1 else [])
            items.append(_Item(entry["id"], f, text, tuple(_profile(p) for p in parts)))
        return items

    @staticmethod
    def _names(entry: dict) -> tuple[str, ...]:
        called = [entry["name"]["en"], entry["name"]["bn"], *entry.get("aliases", [])]
        called += [entry["sanskrit"]] if entry.get("sanskrit") else []
        parts = {normalise(p) for name in called for p in re.split(r"[()/]", name)}
        return tuple(sorted(p for p in parts if len(p) >= 3))

    @staticmethod
    def _muscle_forms(bengali: dict) -> dict:
        """Each way of writing a muscle (normalised) -> the vocabulary muscles it may mean."""
        forms = {}
        for name, bn in bengali.items():
            plural = name.endswith("s") and not name.endswith(("us", "is"))
            english = {name, name[:-1]} if plural else {name}
            if name in ("neck", "foot muscles"):  # "relax your neck" names no muscle
                english = {f"{name.split()[0]} muscles"}
            base, _, gloss = bn.partition("(")
            glosses = [g.strip().removeprefix("যেমন ") for g in gloss.rstrip(")").split(",")]
            for form in english | {base.strip(), *glosses} - {""}:
                forms[normalise(form)] = frozenset([name])
        for group, spellings in SYNONYMS.items():
            forms.update({normalise(w): frozenset(group) for w in spellings.split("|")})
        return forms

    def matches(self, segment: str, items: list[_Item], threshold: float = MATCH) -> list:
        """The ITEMS that SEGMENT matches (chrF of at least THRESHOLD with the item or one of
        its sentences), best first."""
        profile, scored = _profile(segment), []
        for item in items:
            near = [p for p in item.profiles if _may_reach(profile, p, threshold)]
            if (best := max((chrf(profile, p) for p in near), default=0.0)) >= threshold:
                scored.append((best, item))
        return [item for _, item in sorted(scored, key=lambda pair: -pair[0])]


def _language_wrong(answer: str, lang: str) -> list[str]:
    letters = [c for c in answer if c.isalpha() or unicodedata.category(c).startswith("M")]
    bengali = sum("\u0980" <= c <= "\u09ff" for c in letters)
    if lang == "bn" and bengali * 2 < len(letters):
        return ["language: answer is not in Bengali"]
    return ["language: answer contains Bengali script"] if lang == "en" and bengali else []


def _muscles(kb: FactKB, text: str) -> list[tuple]:
    """(the vocabulary muscles it may mean, as written) for each muscle TEXT names."""
    return [(group, said) for _, group, said in kb.muscle_finder.find(normalise(text))]


def _names_and_muscles(item: dict, answer: str, kb: FactKB) -> list[str]:
    """The "names another exercise" and "muscle not in entry" wrongs for exercise E."""
    eid, wrong = item["exercise"], []
    asked = normalise(" ".join(item.get("turns", [])))
    for name, other, _ in kb.name_finder.find(normalise(answer)):
        if other != eid and not any(re.search(_pattern(name), t) for t in (kb.texts[eid], asked)):
            wrong.append(f"names another exercise: {kb.entries[other]['name']['en']}")
    muscles, groups = kb.allowed[eid]
    for group, said in _muscles(kb, answer):
        # "glutes" may mean either gluteus: it is E's if either is, or if E's text says it.
        if not group & muscles and group not in groups:
            wrong.append(f"muscle not in entry: {said}")
    return list(dict.fromkeys(wrong))


def _about_exercise(item: dict, kb: FactKB, segs: list[str]) -> tuple:
    """(unsupported, missing, cautions_carried) for an answer about the item's exercise E."""
    items, entry = kb.items[(item["exercise"], item["lang"])], kb.entries[item["exercise"]]
    unsupported, matched = [], set()
    for seg in (s for s in segs if states_fact(s)):
        # Every item the segment matches, not only the best: one sentence may give two steps.
        hits = kb.matches(seg, items)
        matched |= {id(i) for i in hits}
        muscle_list = any(said not in BROAD for _, said in _muscles(kb, seg))
        if not hits and not muscle_list and not PROFESSIONAL.search(seg):
            unsupported.append(f"unsupported: {seg[:60]}" + ("…" if len(seg) > 60 else ""))
    named = {m for group, _ in _muscles(kb, "\n".join(segs)) for m in group}
    missing = []
    for aspect in item.get("aspects", []):
        if aspect == "muscles":
            unnamed = [m for m in entry["primary_muscles"] if m not in named]
            missing += [f"muscles: {', '.join(unnamed)}"] if unnamed else []
            continue
        field = {"what": "summary", "how": "steps"}.get(aspect, aspect)
        of_field = [i for i in items if i.field == field]
        hits = sum(id(i) in matched for i in of_field)
        need = ceil(0.75 * len(of_field)) if field == "steps" else ceil(len(of_field) / 2)
        missing += [f"{aspect}: {hits} of {len(of_field)} {field}"] if hits < need else []
    carried = any(id(i) in matched for i in items if i.field == "cautions")
    return unsupported, missing, carried


def _safety_first(segs: list[str]) -> bool:
    """Whether the first segment that states or advises anything ("Stop." counts despite its
    length) says to stop or to see a professional."""
    for seg in segs:
        said = STOP.search(seg) or PROFESSIONAL.search(seg)
        if not seg.endswith((":", "：")) and (said or words(seg) >= 4):
            return bool(said)
    return False


def _unknown(lang: str, kb: FactKB, segs: list[str]) -> tuple:
    """(refused, general_marked, wrong) for an exercise the knowledge base lacks."""
    at = next((i for i, s in enumerate(segs) if REFUSAL.search(s)), None)
    if at is None:
        return False, False, ["no refusal: answered as if the exercise were checked"]
    # "Exercises I do have checked entries for: …" speaks of the knowledge base, not the body.
    advice = [i for i in range(at + 1, len(segs)) if states_fact(segs[i])]
    advice = [i for i in advice if not ABOUT_KB.search(segs[i])]
    # The marker must come before the first piece of advice (or in it), not at the end.
    general = any(GENERAL.search(s) for s in segs[at : advice[0] + 1 if advice else None])
    wrong = [] if general or not advice else ["general advice not marked as general"]
    for seg in (s for i, s in enumerate(segs) if i != at and states_fact(s)):
        if found := kb.matches(seg, kb.every[lang], SILENT_MATCH):
            wrong.append(f"gives facts of {kb.entries[found[0].entry]['name']['en']}: {seg[:60]}")
    return True, general, wrong


def _ambiguous(item: dict, answer: str, kb: FactKB, segs: list[str]) -> tuple:
    """(clarified, wrong): asked which one, naming two candidates; and gave no steps yet."""
    said = normalise(answer)
    candidates = [kb.names[c] for c in item.get("candidates", [])]
    named = sum(any(re.search(_pattern(n), said) for n in names) for names in candidates)
    steps = [i for i in kb.every[item["lang"]] if i.field == "steps"]
    wrong = [
        f"steps before knowing which: {s[:60]}"
        for s in segs
        if states_fact(s) and kb.matches(s, steps)
    ]
    return ("?" in answer or "？" in answer) and named >= 2, wrong


def score(item: dict, answer: str, kb: FactKB) -> FactScore:
    """The FactScore of ANSWER (the reply to the item's last turn) under its kind's rules."""
    kind, lang, segs = item["kind"], item["lang"], segments(answer)
    wrong, missing, flags = _language_wrong(answer, lang), [], {}
    if item.get("exercise"):  # a red_flag item may name one too: no other may be named
        unsupported, not_given, flags["cautions_carried"] = _about_exercise(item, kb, segs)
        wrong += _names_and_muscles(item, answer, kb)
        if kind in FACT_KINDS:
            wrong, missing = wrong + unsupported, not_given
        if kind == "condition" and not flags["cautions_carried"]:
            missing.append("cautions not carried")
    if kind == "red_flag":
        flags["safety_first"] = _safety_first(segs)
        missing += [] if flags["safety_first"] else ["safety advice first"]
    elif kind == "unknown":
        flags["refused"], flags["general_marked"], more = _unknown(lang, kb, segs)
        wrong += more
    elif kind == "ambiguous":
        flags["clarified"], more = _ambiguous(item, answer, kb, segs)
        missing += [] if flags["clarified"] else ["a question naming the candidates"]
        wrong += more
    elif kind == "open":
        flags["refused"] = any(REFUSAL.search(s) for s in segs)
        wrong += ["refused an open question"] if flags["refused"] else []
    return FactScore(correct=not wrong and not missing, wrong=wrong, missing=missing, **flags)


def _share(values: list[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def summarise(scores: list[tuple[dict, FactScore]]) -> dict:
    """Per language ("en", "bn") and "overall": counts and shares (None where no item of
    that kind was scored), ready for json.dumps."""

    def figures(pairs: list[tuple[dict, FactScore]]) -> dict:
        of = {k: [s for i, s in pairs if i["kind"] == k] for k in {i["kind"] for i, _ in pairs}}
        facts = [s for i, s in pairs if i["kind"] in FACT_KINDS]

        def rate(kind: str, flag: str) -> float | None:
            return _share([getattr(s, flag) for s in of.get(kind, [])])

        return {
            "n": len(pairs),
            "fact_n": len(facts),
            "fact_accuracy": _share([s.correct for s in facts]),
            "per_kind": {
                k: {"n": len(v), "accuracy": rate(k, "correct")} for k, v in sorted(of.items())
            },
            "refusal_rate": rate("unknown", "refused"),
            "clarification_rate": rate("ambiguous", "clarified"),
            "safety_first_rate": rate("red_flag", "safety_first"),
            "cautions_carried": rate("condition", "cautions_carried"),
            "precision_failures": _share([bool(s.wrong) for s in facts]),
            "recall_failures": _share([bool(s.missing) for s in facts]),
        }

    result = {"overall": figures(scores)}
    for lang in ("en", "bn"):
        result[lang] = figures([(i, s) for i, s in scores if i["lang"] == lang])
    return result

"""Answers written from a knowledge-base entry: every fact in them is the entry's own text.

`answer` is the concise form the chat and vision models were fine-tuned to give for one
aspect (data/sft_dataset.py and data/vlm_dataset.py build their conversations with it);
`facts_answer` puts one or several aspects together, each under its heading and cited by the
number of its passage, with the safety advice and cautions a question or an exercise calls
for. The other answers here say what the knowledge base cannot: which of several exercises
was meant, or that an exercise has no checked entry.
"""

from dataclasses import dataclass

THIS_IS = {"en": "This is {name}.", "bn": "এটি {name}।"}
WORDS = {
    "en": {"mainly": "mainly works", "also": "It also works", "and": "and"},
    "bn": {"mainly": "মূলত কাজ করে", "also": "এছাড়া কাজ করে", "and": "ও"},
}
# The passage (knowledge/base.passages) each aspect's facts come from: its citation.
PASSAGE_OF_ASPECT = {
    "what": "about",
    "muscles": "about",
    "how": "steps",
    "mistakes": "mistakes",
    "cautions": "cautions",
    "beginner": "beginner",
    "benefits": "benefits",
}
HEADINGS = {
    "en": {
        "how": "How to do {name}",
        "mistakes": "Common mistakes in {name}",
        "cautions": "Cautions for {name}",
        "beginner": "An easier version of {name}",
        "benefits": "Benefits of {name}",
    },
    "bn": {
        "how": "{name} করার ধাপ",
        "mistakes": "{name} করার সময় সাধারণ ভুল",
        "cautions": "{name} করার সতর্কতা",
        "beginner": "{name} এর সহজ রূপ (নতুনদের জন্য)",
        "benefits": "{name} এর উপকারিতা",
    },
}
WHICH_ONE = {
    "en": "Which one do you mean? I have checked entries for:",
    "bn": "আপনি কোনটির কথা বলছেন? এগুলোর যাচাই করা তথ্য আমার কাছে আছে:",
}
NO_ENTRY = {
    "en": (
        "I don't have a checked entry for “{name}”, so I can't give you verified steps, "
        "muscles or cautions for it."
    ),
    "bn": (
        "“{name}” নিয়ে আমার কাছে যাচাই করা কোনো তথ্য নেই, তাই এর ধাপ, পেশি বা সতর্কতা নিশ্চিত করে বলতে পারছি না।"
    ),
}
CHECKED_INSTEAD = {
    "en": "Exercises I do have checked entries for that may be close: {names}.",
    "bn": "কাছাকাছি যেসব ব্যায়ামের যাচাই করা তথ্য আমার কাছে আছে: {names}।",
}
GENERAL_ANSWER = {
    "en": "General answer (not from a checked entry, so check it with a coach):",
    "bn": "সাধারণ উত্তর (যাচাই করা তথ্য থেকে নয়, তাই একজন প্রশিক্ষকের সঙ্গে মিলিয়ে নিন):",
}
# What is true of any exercise without an entry: the grounded answer's general part, where
# a small model would invent steps (the bundled one copies another exercise's).
GENERAL_ADVICE = {
    "en": (
        "learn it from a qualified coach or teacher in person before you practise it alone, "
        "start without load or in a gentle range of motion, and stop if you feel sharp pain, "
        "dizziness or numbness."
    ),
    "bn": (
        "একা করার আগে একজন যোগ্য প্রশিক্ষকের কাছে সরাসরি শিখে নিন, শুরুতে ওজন ছাড়া বা "
        "আলতোভাবে করুন, আর তীব্র ব্যথা, মাথা ঘোরা বা অবশ ভাব হলে থেমে যান।"
    ),
}


@dataclass(frozen=True)
class FactsAnswer:
    text: str
    passages: list[str]  # the cited passages' aspects ("steps", "cautions"…), by number


def full_name(entry: dict, lang: str) -> str:
    """The exercise's name as an answer gives it: English (Sanskrit); in Bengali the English
    name, then the Bengali one. The vision model reads a picture as the English name's words
    and copies those reliably, while a Bengali name is ~40 byte-level tokens that it rarely
    spells right (README, Seeing)."""
    if lang == "bn":
        return f"{entry['name']['en']} — {entry['name']['bn']}"
    name = entry["name"]["en"]
    if entry.get("sanskrit"):
        name += f" ({entry['sanskrit']})"
    return name


def answer(entry: dict, aspect: str, lang: str, vocabulary: dict) -> str:
    """A concise answer from the entry's own facts, for one ASPECT."""
    muscles = vocabulary.get("muscles", {}) if lang == "bn" else {}
    name = entry["name"][lang]

    def listed(items):
        return ", ".join(muscles.get(m, m) for m in items)

    if aspect == "what":
        sanskrit = f" ({entry['sanskrit']})" if entry.get("sanskrit") else ""
        return f"{name}{sanskrit}: {entry['summary'][lang]}"
    if aspect == "how":
        return "\n".join(f"{i}. {s}" for i, s in enumerate(entry["steps"][lang], 1))
    if aspect == "muscles":
        w, also = WORDS[lang], entry["secondary_muscles"]
        if lang == "bn":
            text = f"{name} {w['mainly']}: {listed(entry['primary_muscles'])}।"
            return f"{text} {w['also']}: {listed(also)}।" if also else text
        text = f"{name} {w['mainly']} the {listed(entry['primary_muscles'])}."
        return f"{text} {w['also']} the {listed(also)}." if also else text
    if aspect == "beginner":
        return entry["beginner_modification"][lang]
    field = {"mistakes": "common_mistakes", "cautions": "cautions", "benefits": "benefits"}[aspect]
    return "\n".join(f"- {item}" for item in entry[field][lang])


def facts_answer(
    entry: dict,
    aspects: list[str],
    lang: str,
    vocabulary: dict,
    *,
    advice: str | None = None,
    cautions: bool = False,
    this_is: bool = False,
) -> FactsAnswer:
    """ENTRY's answer for ASPECTS in LANG: ADVICE (safety) first when given, "This is …" when
    THIS_IS (the first answer about a picture), each aspect's facts cited [n], and the
    cautions at the end when CAUTIONS and they were not asked for."""
    asked = list(aspects)
    if cautions and "cautions" not in asked:
        asked.append("cautions")
    cited: list[str] = []
    sections = []
    for aspect in asked:
        passage = PASSAGE_OF_ASPECT[aspect]
        if passage not in cited:
            cited.append(passage)
        number = cited.index(passage) + 1
        body = answer(entry, aspect, lang, vocabulary)
        if aspect in ("what", "muscles"):  # these open with the exercise's name already
            sections.append(f"{body} [{number}]")
        else:
            heading = HEADINGS[lang][aspect].format(name=entry["name"][lang])
            sections.append(f"{heading} [{number}]:\n{body}")
    opening = [advice] if advice else []
    if this_is:
        opening.append(THIS_IS[lang].format(name=full_name(entry, lang)))
    text = "\n\n".join([" ".join(opening), *sections] if opening else sections)
    return FactsAnswer(text, cited)


def which_one(entries: list[dict], lang: str) -> str:
    """Asks which of ENTRIES was meant, naming each as the knowledge base does."""
    lines = [f"- {full_name(entry, lang)}" for entry in entries]
    return "\n".join([WHICH_ONE[lang], *lines])


def no_entry(name: str, lang: str, checked: list[dict]) -> str:
    """Says plainly that NAME has no checked entry, and names CHECKED ones that may be close."""
    text = NO_ENTRY[lang].format(name=name)
    if checked:
        names = ", ".join(entry["name"][lang] for entry in checked)
        text += " " + CHECKED_INSTEAD[lang].format(names=names)
    return text

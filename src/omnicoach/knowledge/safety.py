"""Safety first: warning signs, health conditions, and the exercises that always carry their
cautions.

- A warning sign — sharp or sudden pain while training, a pop, chest pain, dizziness,
  fainting, numbness, breathlessness that does not settle, a fresh injury — is answered with
  "stop, and see a professional" before anything else, and no exercise advice beyond the
  entry's cautions.
- A standing condition — pregnancy, high blood pressure, glaucoma, an old or current injury,
  recent surgery — gets a line saying to check with a doctor or physiotherapist, and the
  entry's cautions with whatever was asked.
- Inversions, loaded lifts (a barbell or kettlebell on the spine) and advanced poses carry
  their cautions in every answer about them.

This is ordinary exercise-safety guidance, not medical advice, and the answers say so by
sending people to a professional.
"""

import re
from dataclasses import dataclass

# Symptoms that call for "stop now, get help now", not "see someone soon".
EMERGENCY = re.compile(
    r"chest (pain|tight|pressure)|chest hurts|can'?t breathe|cannot breathe|trouble breathing|"
    r"short(ness)? of breath|faint|passed out|pass out|black(ed)? out|heart (racing|pounding)|"
    r"palpitation|বুকে (ব্যথা|চাপ)|বুক ব্যথা|শ্বাসকষ্ট|শ্বাস নিতে (কষ্ট|পারছি না)|অজ্ঞান|"
    r"জ্ঞান হারা|বুক ধড়ফড়",
    re.IGNORECASE,
)
WARNING_SIGNS = re.compile(
    r"(sharp|stabbing|shooting|sudden|severe|intense|burning|sharp,?) (pain|ache)|"
    r"pain (in|when|while|during|after|every time|whenever)|hurts? (when|while|during|after|"
    r"every time|whenever)|it hurts|(heard|felt) (a|something) (pop|snap|crack)|popped|"
    r"snapped|dizz|light ?headed|vertigo|numb|tingl|pins and needles|blurr?(ed|y) vision|"
    r"swollen|swelling|(i|just) (hurt|injured|tweaked|pulled|strained|tore|sprained|twisted) "
    r"my|i think i (hurt|injured|tore|pulled)|ব্যথা (করে|লাগে|হয়|পাই|পাচ্ছি|হচ্ছে)|"
    r"তীব্র ব্যথা|হঠাৎ ব্যথা|চিনচিনে|মাথা ঘোর|মাথা ঘুর|ঝিমঝিম|অবশ|অসাড়|মচকে|ফুলে গেছে|"
    r"চোট পেয়েছি|টান লেগেছে|পট করে|spasm|can'?t (stand|walk|straighten|move|put weight)|"
    r"cannot (stand|walk|straighten|move)|(really |very )?(bad|severe|terrible|awful|worst) "
    r"headache|bruis|black and blue|turned (blue|purple)|ছিঁড়ে|কালশিটে|ঝাপসা|যন্ত্রণা|"
    r"(হাঁটতে|দাঁড়াতে|নড়তে) পারছি না|নীল হয়ে|আওয়াজ হ",
    re.IGNORECASE,
)
CONDITIONS = re.compile(
    r"pregnan|expecting a baby|blood pressure|hypertension|glaucoma|injur|bad (knee|back|"
    r"shoulder|wrist|neck|hip)s?|(knee|back|neck|wrist|shoulder|hip|ankle) (pain|problem|"
    r"issue)s?|surgery|operation|herniat|slipped disc|disc (bulge|problem)|sciatica|arthritis|"
    r"osteopor|heart (condition|disease|problem)|diabet|asthma|গর্ভ|রক্তচাপ|প্রেশার|গ্লুকোমা|"
    r"চোট|আঘাত|অস্ত্রোপচার|সার্জারি|অপারেশন|ব্যথা আছে|সমস্যা আছে|আর্থ্রাইটিস|হাঁপানি|"
    r"ডায়াবেটিস|হৃদরোগ|(knee|back|shoulder|wrist|neck|hip)s? (is|are) (bad|weak|dodgy)|weeks along"
    r"|months along|trimester|postpartum|post-partum|gave birth|"
    r"c-?section|caesarean|cesarean|had my \w+( \w+)? (out|removed|replaced)|replac(ed|ement)|"
    r"sprain|\btorn\b|\btear\b|rotator cuff|prolaps|diagnosed|সিজার|প্রসব|ডেলিভারি|রিপ্লেস|"
    r"প্রোল্যাপস|ডিস্ক|মচকা",
    re.IGNORECASE,
)
RISKY_CATEGORIES = {"inversion"}
LOADED_EQUIPMENT = {"barbell", "kettlebell"}

ADVICE = {
    "en": {
        "emergency": (
            "Stop exercising now. Chest pain, trouble breathing, fainting or a racing heart can "
            "be a medical emergency: call your local emergency number or get medical help "
            "straight away."
        ),
        "warning": (
            "Stop this exercise for now. Sharp or sudden pain, a pop, dizziness, numbness or "
            "swelling are warning signs: see a doctor or physiotherapist before you train it "
            "again, and don't push through the pain."
        ),
        "condition": (
            "With a health condition or an injury, check with your doctor or physiotherapist "
            "before you start, and follow the cautions below."
        ),
    },
    "bn": {
        "emergency": (
            "এখনই ব্যায়াম বন্ধ করুন। বুকে ব্যথা, শ্বাসকষ্ট, অজ্ঞান ভাব বা বুক ধড়ফড় জরুরি "
            "চিকিৎসার বিষয় হতে পারে: এখনই জরুরি নম্বরে ফোন করুন বা ডাক্তারের কাছে যান।"
        ),
        "warning": (
            "এই ব্যায়ামটি এখন বন্ধ রাখুন। তীব্র বা হঠাৎ ব্যথা, পট করে শব্দ, মাথা ঘোরা, অবশ ভাব বা "
            "ফোলা সতর্কসংকেত: আবার করার আগে একজন ডাক্তার বা ফিজিওথেরাপিস্ট দেখান, ব্যথা নিয়ে "
            "জোর করে করবেন না।"
        ),
        "condition": (
            "কোনো শারীরিক সমস্যা বা চোট থাকলে শুরু করার আগে ডাক্তার বা ফিজিওথেরাপিস্টের পরামর্শ "
            "নিন, এবং নিচের সতর্কতাগুলো মেনে চলুন।"
        ),
    },
}


@dataclass(frozen=True)
class SafetyCheck:
    """What a question says about the asker's body: "emergency", "warning", "condition" or
    None (nothing)."""

    level: str | None

    @property
    def stops_exercise(self) -> bool:
        """A warning sign: no exercise advice beyond the cautions."""
        return self.level in ("emergency", "warning")

    def advice(self, lang: str) -> str | None:
        return ADVICE[lang][self.level] if self.level else None


def check(question: str) -> SafetyCheck:
    if EMERGENCY.search(question):
        return SafetyCheck("emergency")
    if WARNING_SIGNS.search(question):
        return SafetyCheck("warning")
    if CONDITIONS.search(question):
        return SafetyCheck("condition")
    return SafetyCheck(None)


def is_risky(entry: dict) -> bool:
    """Inversions, loaded spinal lifts and advanced poses: cautions in every answer."""
    return (
        entry["category"] in RISKY_CATEGORIES
        or bool(LOADED_EQUIPMENT & set(entry["equipment"]))
        or entry["level"] == "advanced"
    )

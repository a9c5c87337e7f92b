"""What a question asks about an exercise: what it is, how to do it, its muscles, common
mistakes, cautions, a beginner version, benefits — one or several ("how do I do it and what
should I avoid?" asks for the steps and the mistakes).

Each clause of the question is read on its own (split at "and", "also", commas; "আর", "এবং"),
by cue words in English and Bengali. A question with no cue at all is compared with the
phrasings the models were fine-tuned on (MiniLM cosine, Bengali romanised), and takes the
aspect of the nearest one when it is close enough (MIN_PHRASING_SCORE). Cue words come first
because they are exact: "what should I avoid?" is about mistakes, however near it lies to
"who should avoid it?" in MiniLM's space.
"""

import re

import numpy as np

from omnicoach.knowledge.phrasings import ASPECTS, aspect_phrasings
from omnicoach.models.romanise import romanise_bengali

# Below this cosine to every known phrasing, a clause asks about no aspect the knowledge base
# holds. Measured: new wordings of known questions score 0.51–0.95 ("Is it safe for my
# knees?" 0.51, "which muscles does this target" 0.78); others at most 0.36 ("What colour is
# the shirt?" 0.35, "Is my form right?" 0.30, "write me a poem" 0.27).
MIN_PHRASING_SCORE = 0.5

# Cue words per aspect, most specific first: a clause takes every aspect whose cue it holds,
# except that the general ones ("how do I", "what is") count only when nothing else does.
CUES = {
    "beginner": (
        r"beginner|easier|easy version|simpler|simplif|modif|regress|new to|can'?t|cannot|"
        r"unable to|struggle|too hard|too difficult|scale (it|this)? ?down|lighter version|prop|"
        r"নতুন|সহজ|শুরু করছি|পারি না|পারছি না|কঠিন লাগ"
        r"|gentler|পারে না|পারেন না|lighter way|\bscale\b|build up to|ease into|what then|instead\b"
        r"|(don'?t|doesn'?t"
        r"|not|never) reach|newbie|starting out|আরাম করে|পৌঁছায় না|পৌঁছাতে পারি না|যায় না"
        r"|হালকা কিছু|শুরু থেকে|এগোব|বদলে"
    ),
    "mistakes": (
        r"mistake|wrong|error|fault|avoid doing|what (should|do) i avoid|watch (out )?for|"
        r"bad form|don'?t do|pitfall|mess (it |this )?up|screw (it )?up|problems?|ভুল"
        r"|bad habits?|gives? away|get(s|ting)? (it )?wrong|go(es)? wrong|sloppy|গড়বড়|করা (একদম "
        r"|একেবারে )?উচিত না"
    ),
    "cautions": (
        r"safe|safety|precaution|caution|contraindicat|who should(n'?t| not)? (avoid|skip|do)|"
        r"should (i|we) skip|avoid (it|this)\b|risk|danger|injur|hurt|pregnan|blood pressure|"
        r"glaucoma|surgery|okay for me|ok for me|bad for|harm|warning|contra|নিরাপদ|সতর্ক|ঝুঁকি|"
        r"এড়িয়ে চল|উচিত নয়|উচিত না|ক্ষতি|গর্ভ|রক্তচাপ|চোট|আঘাত|অস্ত্রোপচার|সার্জারি|নিষেধ|বারণ|"
        r"না করাই|সবাই কি|সবার জন্য|careful|take care"
        r"|steer clear|avoid (it |this |that )?if|(knee|back|shoulder|wrist|neck|hip)s? (is"
        r"|are) (bad|weak|sore)|stay away|keep away|is it (ok|okay|fine|alright|all right)"
        r"|still (ok|okay"
        r"|alright|fine|all right)|drop it|too soon|\byet\b|or wait|বিপদ|কাদের জন্য (না|নয়)|সাবধান"
        r"|সমস্যা বাড়বে|ঠিক সময়|এড়িয়ে যাওয়া"
    ),
    "muscles": (
        r"muscle|target|strengthen|engage|activate|\bhits?\b|body parts?|"
        r"\bwork(s|ing)?\b(?! out)|\btrains?\b|\bglutes\b|\bquads\b|\bfeel (it|this)|পেশি|"
        r"কাজ করে|কাজ করায়|শক্তিশালী|মজবুত|শক্ত হয়|শরীরের কোন"
        r"|\bworked\b|stretch(es|ed)?\b|pull (down|in|on|along)|where (do|should) i feel|মাসল"
        r"|টান (দেয়|লাগে|পড়ে)|কাজ হয়|কোথায় কোথায়"
    ),
    "benefits": (
        r"benefit|good for|\bwhy (should|do|does|would|is|are)\b|what (do|does|will) "
        r"(it|they|this|these|that) do for|help(s)? (with|me)|advantage|worth|point of|improve|"
        r"gain from|উপকার|লাভ|সুবিধা|কেন কর|কীসের জন্য|জন্য ভালো|ভালো হয়|কী পাওয়া যায়"
        r"|upside|what .{0,25}\bdo for (me|you|us)\b|pay ?off|what'?s in it for|get out of"
        r"|is it worth|why bother|\beffects?\b|কী পাব"
        r"|কী পায়|পরিবর্তন|কী লাভ|মেদ কম"
    ),
    "how": (
        r"\bhow (do|should|can|would|to) (i |you |we |one )?(do|perform|practi[cs]e|execute|"
        r"get into)\b|\bhow (is|are) (it|they|this) (done|performed)|\bsteps?\b|technique|"
        r"\bform\b|perform|set ?up|position|alignment|where (should|do|does|to)|height|"
        r"how (far|wide|deep|low|high|long|many)|breath|\bcues?\b|instruction|get into|"
        r"come into|proper way|correct way|right way|execute|teach me|walk me through|guide|"
        r"tips?\b|কীভাবে কর|কিভাবে কর|ধাপ|নিয়ম(?!িত)|পদ্ধতি|শেখান|কৌশল|কোথায় (রাখ|থাক|ঠেক)|কতটা|"
        r"সেটআপ|অবস্থান"
        r"|which (elbow|knee|hand|foot|leg|arm|side|way)|where (am i|are we|is one) (supposed"
        r"|meant)|\blook(ing)? (at|while|where)\b|where .{0,12}\blook\b|\bgaze\b|\border\b"
        r"|placement|\b(wider|narrower|closer)\b|\bgrip\b|how (close|far apart)|close to my"
        r"|further (out|away)|দৃষ্টি|তাকা"
        r"|ক্রমে|কোন দিকে|দূরত্ব|কী করে|গ্রিপ"
    ),
}
GENERAL_CUES = {
    "how": r"\bhow (do|should|can|would|to|does one)\b|\bhow\b.*\b(do|perform)\b|কীভাবে|কিভাবে",
    "what": (
        r"\bwhat('?s| is| are)\b|tell me about|describe|explain|what (kind|type)|never heard|"
        r"\bmean\b|definition|define|overview|introduce|সম্পর্কে|কাকে বলে|কোন ধরন|কী ধরন|কেমন আসন|"
        r"কেমন ব্যায়াম|বোঝা|পরিচয়|"
        r"কী\s*[?？]?$|কি\s*[?？]?$"
        r"|জিনিস|মানে (কি|কী)|খুলে বল|\bactually\b"
    ),
}
CLAUSE_BREAK = re.compile(
    r"\s*(?:[?？;]|,|\band\b|\balso\b|\bplus\b|&|\bthen\b|।"
    r"|(?<![\u0980-\u09ff])(?:এবং|আর|তারপর)(?![\u0980-\u09ff]))\s*",
    re.IGNORECASE,
)


class AspectReader:
    """EMBEDDER (models/embedder.TextEmbedder) compares cue-less clauses with the phrasings."""

    def __init__(self, embedder):
        self.embedder = embedder
        self.phrasings = aspect_phrasings()
        self.vectors = self._embed([q for _, q in self.phrasings])

    def _embed(self, texts: list[str]) -> np.ndarray:
        vectors = self.embedder.embed([romanise_bengali(t) for t in texts])
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def nearest(self, clause: str) -> tuple[str, float]:
        """The aspect of CLAUSE's nearest known phrasing, and its cosine."""
        scores = self.vectors @ self._embed([clause])[0]
        best = int(np.argmax(scores))
        return self.phrasings[best][0], float(scores[best])

    def aspects(self, question: str) -> list[str]:
        """The aspects QUESTION asks about, in ASPECTS' order; empty when it asks none the
        knowledge base answers. Exercise names in it should be masked (NameIndex.masked)."""
        found = set().union(*(cued_aspects(clause) for clause in clauses(question)))
        if not found and question.strip():  # no cue anywhere: the nearest known phrasing
            aspect, score = self.nearest(question)
            found = {aspect} if score >= MIN_PHRASING_SCORE else set()
        return [a for a in ASPECTS if a in found]


def clauses(question: str) -> list[str]:
    """QUESTION cut where a new request may start; empty pieces dropped."""
    return [c for c in CLAUSE_BREAK.split(question.strip()) if c and c.strip()]


def cued_aspects(clause: str) -> set[str]:
    """The aspects CLAUSE's cue words name; the general "how"/"what" only when none else."""
    text = clause.lower()
    found = {aspect for aspect, cue in CUES.items() if re.search(cue, text)}
    if not found:
        found = {aspect for aspect, cue in GENERAL_CUES.items() if re.search(cue, text)}
        if found == {"how", "what"}:  # "what is the way to do it?": the steps
            found = {"how"}
    return found

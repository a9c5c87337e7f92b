"""Bengali script → Latin letters, the way people type Bengali in chat ("ekta chobi ako").

The bundled MiniLM has an English WordPiece vocabulary: Bengali script falls apart into single
letters and its lowercasing strips the vowel signs, so "আঁকো" (draw!) and "আঁকি" (I draw) and
"আকাশ" (sky) all become "আ ##ক…". Written in Latin letters the same words are distinct
word pieces, and Bengali typed in Latin letters — common in chat — meets the same spelling.

A simple, deterministic letter mapping, not a linguistic transliteration: a consonant's
inherent vowel is written only after a word's first consonant ("ছবি" → "chobi", "একটা" →
"ekta"), which matches how most people type it often enough to help.
"""

VOWELS = {
    "অ": "o", "আ": "a", "ই": "i", "ঈ": "i", "উ": "u", "ঊ": "u", "ঋ": "ri",
    "এ": "e", "ঐ": "oi", "ও": "o", "ঔ": "ou",
}  # fmt: skip
VOWEL_SIGNS = {
    "া": "a", "ি": "i", "ী": "i", "ু": "u", "ূ": "u", "ৃ": "ri",
    "ে": "e", "ৈ": "oi", "ো": "o", "ৌ": "ou",
}  # fmt: skip
CONSONANTS = {
    "ক": "k", "খ": "kh", "গ": "g", "ঘ": "gh", "ঙ": "ng",
    "চ": "ch", "ছ": "ch", "জ": "j", "ঝ": "jh", "ঞ": "n",
    "ট": "t", "ঠ": "th", "ড": "d", "ঢ": "dh", "ণ": "n",
    "ত": "t", "থ": "th", "দ": "d", "ধ": "dh", "ন": "n",
    "প": "p", "ফ": "f", "ব": "b", "ভ": "bh", "ম": "m",
    "য": "j", "র": "r", "ল": "l", "শ": "sh", "ষ": "sh", "স": "s", "হ": "h",
    "ড়": "r", "ঢ়": "rh", "য়": "y", "ৎ": "t",
}  # fmt: skip
OTHERS = {"ং": "ng", "ঃ": "h", "ঁ": "", "্": "", "।": ".", "়": ""}
DIGITS = {chr(0x09E6 + i): str(i) for i in range(10)}


def has_bengali(text: str) -> bool:
    return any("\u0980" <= ch <= "\u09ff" for ch in text)


def romanise_bengali(text: str) -> str:
    """TEXT with every Bengali letter written in Latin letters; anything else unchanged."""
    if not has_bengali(text):
        return text
    text = text.replace("ড়", "ড়").replace("ঢ়", "ঢ়").replace("য়", "য়")  # composed forms
    text = text.replace("্য", "")  # the ya-phala is heard as a vowel change, not typed
    out = []
    for i, ch in enumerate(text):
        if ch in CONSONANTS:
            out.append(CONSONANTS[ch])
            following = text[i + 1] if i + 1 < len(text) else ""
            word_start = i == 0 or not ("\u0980" <= text[i - 1] <= "\u09ff")
            if word_start and following in CONSONANTS:
                out.append("o")  # the inherent vowel, spoken after a word's first consonant
        elif ch in VOWEL_SIGNS:
            out.append(VOWEL_SIGNS[ch])
        elif ch in VOWELS:
            out.append(VOWELS[ch])
        else:
            out.append(OTHERS.get(ch, DIGITS.get(ch, ch)))
    return "".join(out)

"""How people ask about an exercise: the question phrasings the chat and vision models were
fine-tuned on (data/sft_dataset.py, data/vlm_dataset.py build their conversations from them),
which the assistant also uses to tell what a question asks (knowledge/aspects.py).

"{name}" stands for the exercise's name. Per aspect and language, the LAST phrasing of each
list is held out of fine-tuning (the sft dataset's test_known split).
"""

ASPECTS = ("what", "how", "muscles", "mistakes", "cautions", "beginner", "benefits")

QUESTIONS = {
    "en": {
        "what": ["What is {name}?", "Tell me about {name}.", "What kind of exercise is {name}?"],
        "how": [
            "How do I do {name}?",
            "What are the steps for {name}?",
            "Walk me through {name}, step by step.",
            "Can you explain how to perform {name}?",
        ],
        "muscles": [
            "What muscles does {name} work?",
            "Which muscles are used in {name}?",
            "What does {name} strengthen?",
        ],
        "mistakes": [
            "What are common mistakes in {name}?",
            "What do people get wrong in {name}?",
            "What should I avoid doing wrong in {name}?",
        ],
        "cautions": [
            "Who should avoid {name}?",
            "Is {name} safe for everyone?",
            "Any precautions for {name}?",
        ],
        "beginner": [
            "I'm a beginner. How can I make {name} easier?",
            "Is there an easier version of {name}?",
            "How should a beginner modify {name}?",
        ],
        "benefits": [
            "What are the benefits of {name}?",
            "Why should I do {name}?",
            "What is {name} good for?",
        ],
    },
    "bn": {
        "what": ["{name} কী?", "{name} সম্পর্কে বলুন।", "{name} কোন ধরনের ব্যায়াম?"],
        "how": [
            "{name} কীভাবে করব?",
            "{name} করার ধাপগুলো কী?",
            "ধাপে ধাপে {name} করা শেখান।",
            "{name} কীভাবে করতে হয় বুঝিয়ে বলুন।",
        ],
        "muscles": [
            "{name} কোন পেশিতে কাজ করে?",
            "{name} করলে কোন পেশি ব্যবহার হয়?",
            "{name} কী শক্তিশালী করে?",
        ],
        "mistakes": [
            "{name} করার সময় সাধারণ ভুলগুলো কী?",
            "{name} করতে গিয়ে লোকে কী ভুল করে?",
            "{name} করার সময় কোন ভুল এড়িয়ে চলব?",
        ],
        "cautions": [
            "কার {name} এড়িয়ে চলা উচিত?",
            "{name} কি সবার জন্য নিরাপদ?",
            "{name} করার সতর্কতা কী?",
        ],
        "beginner": [
            "আমি নতুন। {name} কীভাবে সহজ করব?",
            "{name} এর কোনো সহজ রূপ আছে?",
            "নতুনরা {name} কীভাবে বদলে করবে?",
        ],
        "benefits": [
            "{name} এর উপকারিতা কী?",
            "কেন {name} করব?",
            "{name} কীসের জন্য ভালো?",
        ],
    },
}
FOLLOW_UPS = {
    "en": {"how": "How do I do it?", "muscles": "What muscles does it work?"},
    "bn": {"how": "এটা কীভাবে করব?", "muscles": "এটা কোন পেশিতে কাজ করে?"},
}
# About a picture: naming the exercise, and naming it with its steps (the vision model's data).
IDENTIFY = {
    "en": [
        "What exercise is this?",
        "What is this exercise?",
        "Which pose is this?",
        "Name the exercise in the picture.",
        "What am I doing in this photo?",
        "Can you tell what exercise this is?",
    ],
    "bn": [
        "এটা কোন ব্যায়াম?",
        "ছবির ব্যায়ামটির নাম কী?",
        "এটা কোন আসন?",
        "ছবিতে আমি কী ব্যায়াম করছি?",
    ],
}
IDENTIFY_AND_HOW = {
    "en": [
        "What is this exercise and how do I do it?",
        "What exercise is this, and how should I do it?",
        "Tell me what this pose is and the steps to do it.",
    ],
    "bn": ["এটা কোন ব্যায়াম, আর কীভাবে করব?", "ছবির ব্যায়ামটি কী এবং এটা কীভাবে করতে হয়?"],
}


def aspect_phrasings() -> list[tuple[str, str]]:
    """(aspect, question) for every phrasing above, with "it" for the exercise's name: what
    a question without a name ("how do I do this?") is compared with."""
    it = {"en": "it", "bn": "এটা"}
    phrasings = [
        (aspect, question.format(name=it[lang]))
        for lang, aspects in QUESTIONS.items()
        for aspect, questions in aspects.items()
        for question in questions
    ]
    phrasings += [(aspect, q) for lang in FOLLOW_UPS for aspect, q in FOLLOW_UPS[lang].items()]
    phrasings += [("what", q) for lang in IDENTIFY for q in IDENTIFY[lang]]
    phrasings += [("how", q) for lang in IDENTIFY_AND_HOW for q in IDENTIFY_AND_HOW[lang]]
    return phrasings

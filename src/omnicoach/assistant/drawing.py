"""Drawing: a chat message the prompt router labels a picture request is drawn by the image
generator, and the picture is kept as the user's file (purpose "image_generation"); POST
/generate and /v1/images/generations draw through the same function.

Where no image generator is installed, a picture request is answered plainly that drawing is
not available, instead of letting the chat model pretend it drew something.
"""

import io
import re
import time
from dataclasses import dataclass

from omnicoach.images.decode import encode_png
from omnicoach.knowledge.names import NameIndex
from omnicoach.models.image_generator import says_word

PURPOSE = "image_generation"
ROUTER_NAME = "omnicoach-router"  # the "model" of a reply the router made without a model
# A message is drawn only when the router is sure AND it speaks of a picture: the router alone
# sent 3 of 136 exercise questions to the generator ("এই আসনটা কারা এড়িয়ে চলবেন?", a dizzy
# spell after squats), while every picture request in its validation and test sets says one
# of these words (English, Bengali, Bengali in Latin letters) — README, The prompt router.
PICTURE_WORDS = re.compile(
    r"draw|drew|picture|\bpics?\b|image|\bimg\b|sketch|illustrat|paint|render|photo|generate|"
    r"create|make|show|visual|diagram|\bart\b|artwork|poster|logo|cartoon|comic|watercolou?r|"
    r"colou?r|background|zoom|again|another|one more|redo|ছবি|আঁক|আকো|এঁকে|একে দাও|দেখাও|"
    r"দেখান|চিত্র|ইমেজ|স্কেচ|বানাও|বানিয়ে|বানান|তৈরি|chobi|chhobi|\bako\b|\beke\b|\baka\b|"
    r"banao|banie|baniye|toiri|dekhao|\brong|\babar\b|arekta",
    re.IGNORECASE,
)
IMAGE_GENERATION_MISSING = (
    "That sounds like a request for a picture, but image generation is not installed in this "
    "omnicoach yet, so I can't draw it. I can describe the pose or exercise in words instead: "
    "ask me to describe or explain it."
)


@dataclass(frozen=True)
class DrawnImage:
    file_id: str
    png: bytes
    size: str  # "WxH"


@dataclass(frozen=True)
class Drawing:
    model: str
    seed: int
    steps: int
    lora: str | None
    seconds: float  # the drawing's own time, not its wait for a slot
    images: list[DrawnImage]


def draw(generator, files, db, user: str, **settings) -> Drawing:
    """Draw as SETTINGS say (ImageGenerator.generate's arguments) and keep each picture as a
    PNG file of USER's. A bad setting raises the generator's error, naming it."""
    started = time.time()
    images, seed, lora = generator.generate(**settings)
    seconds = time.time() - started
    stored = []
    for image in images:
        png = encode_png(image)
        file = files.save(db, user, io.BytesIO(png), "drawing.png", PURPOSE)
        stored.append(DrawnImage(file.id, png, f"{image.width}x{image.height}"))
    return Drawing(generator.name, seed, settings["steps"], lora, seconds, stored)


def chat_drawing_size(generator) -> str | None:
    """The size a chat drawing is shown at: a generator that draws small (64×64) and scales up
    is shown four times larger; any other at its own size."""
    side = 4 * generator.native_size
    return f"{side}x{side}" if generator.upscales else None


def drawing_prompt(message: str, generator, names: NameIndex) -> str:
    """What to draw for a chat MESSAGE. The generator trained here knows an exercise by the
    wordings it learnt ("a person doing Warrior II"), not by whatever else a message says
    ("can you draw warrior 2 for me and say what it's good for?"), so a message naming a
    knowledge-base exercise is drawn as the generator's own wording, with any LoRA trigger
    word the message says kept. Other messages, and generators trained elsewhere, get the
    message as it is."""
    if generator.exercise_prompt is None:
        return message
    exercise = names.first(message)
    if exercise is None:
        return message
    asked = generator.exercise_prompt.format(name=names.entries[exercise]["name"]["en"])
    loras = generator.loras().values()
    return " ".join(
        [asked, *(lora["trigger"] for lora in loras if says_word(message, lora["trigger"]))]
    )

"""Which exercise a picture shows: the vision model names it, the knowledge base's names
decide which entry that is.

The vision-language model names held-out pictures well (94 %, README, Seeing), but the steps
it then writes come from a 135M model's memory and are often wrong for the exercise it named
(bench press: "stand with your feet about 200–300 meters…"). So a question about a picture is
answered as a text question is: the model is asked only "What exercise is this?" (greedy),
the first knowledge-base name in its answer is the exercise, and the facts come from that
entry (assistant/grounded.py). The name is cached per picture, so a follow-up ("what muscles
does it work?") costs nothing.
"""

import threading
from collections import OrderedDict

from PIL import Image

from omnicoach.knowledge.names import NameIndex
from omnicoach.knowledge.phrasings import IDENTIFY
from omnicoach.models.sampling import SamplingParams
from omnicoach.models.vision_chat import image_digest
from omnicoach.models.vision_language import IMAGE_MARKER

IDENTIFY_QUESTION = IDENTIFY["en"][0]  # "What exercise is this?"
IDENTIFY_TOKENS = 32  # "This is Boat Pose (Paripurna Navasana)." fits
CACHED_PICTURES = 64


class PictureNamer:
    def __init__(self, vision, names: NameIndex):
        self.vision, self.names = vision, names
        self._identified: OrderedDict[str, tuple[str | None, str]] = OrderedDict()
        self._lock = threading.Lock()

    def identify(self, image: Image.Image) -> tuple[str | None, str]:
        """(exercise id or None, the vision model's answer) for IMAGE, cached per picture."""
        key = image_digest(image)
        with self._lock:
            if key in self._identified:
                self._identified.move_to_end(key)
                return self._identified[key]
        messages = [{"role": "user", "content": f"{IMAGE_MARKER}\n{IDENTIFY_QUESTION}"}]
        greedy = SamplingParams(temperature=0.0, max_tokens=IDENTIFY_TOKENS, stop=("\n",))
        said = "".join(self.vision.stream(messages, image, greedy)).strip()
        found = (self.names.first(said), said)
        with self._lock:
            self._identified[key] = found
            while len(self._identified) > CACHED_PICTURES:
                self._identified.popitem(last=False)
        return found

"""Pictures in a conversation: the user's photos, and which picture a question is about.

A picture part is decoded when the turn starts (a bad image fails the turn, naming its part)
and kept with its message; in a stored conversation it is saved as a PNG file (purpose
"vision") whose id the message records, so a later turn ("how do I do it?") still sees it.

Only a picture the user sent becomes the subject of later questions. A picture the assistant
drew answers a request; it is not a photo of the user, and a question after it ("what muscles
does a push-up work?") is not about it. The user may still ask about it in so many words
("what pose is in the picture you drew?").

The vision model reads the conversation from the picture's message on (after the system
prompt): with earlier turns in view it named the earlier picture's exercise again (measured: a
tree pose, named alone, was called "Downward-Facing Dog" after a talk about downward dog).
"""

import io
import re

from PIL import Image

from omnicoach.errors import NotFoundError
from omnicoach.images.decode import encode_png, load_image
from omnicoach.images.parts import image_from_part
from omnicoach.models.vision_language import IMAGE_MARKER

PURPOSE = "vision"
# A question that points at a picture in so many words.
ABOUT_A_PICTURE = re.compile(
    r"\b(picture|image|drawing|photo|illustration|drew|drawn)\b|ছবি|আঁকা", re.IGNORECASE
)


class PictureStore:
    """Decodes picture parts and keeps pictures as the user's files (FILES and DB may be None:
    then a file id cannot be used and nothing is kept)."""

    def __init__(self, files, db, max_pixels: int, max_bytes: int):
        self.files, self.db = files, db
        self.max_pixels, self.max_bytes = max_pixels, max_bytes

    def decode(self, part, where: str, user: str) -> Image.Image:
        return image_from_part(
            part,
            where=where,
            user=user,
            db=self.db,
            files=self.files,
            max_pixels=self.max_pixels,
            max_bytes=self.max_bytes,
        )

    def save(self, user: str, pictures: list[Image.Image]) -> list[str]:
        """PICTURES as PNG files of USER's; their ids."""
        ids = []
        for picture in pictures:
            png = io.BytesIO(encode_png(picture))
            ids.append(self.files.save(self.db, user, png, "chat-image.png", PURPOSE).id)
        return ids

    def load(self, user: str, file_id: str) -> Image.Image | None:
        """The stored picture, or None when the user has deleted its file since: the
        conversation goes on, from the picture before it or without one."""
        if self.files is None:
            return None
        try:
            stored = self.files.get(self.db, user, file_id)
            return load_image(self.files.path(stored).read_bytes())
        except (NotFoundError, FileNotFoundError):
            return None


def newest_picture(
    messages: list[dict], store: PictureStore, user: str, drawings: bool = False
) -> tuple[int, Image.Image] | None:
    """(index of the message, picture) of the newest user picture in MESSAGES — or, with
    DRAWINGS, of the newest picture at all, the assistant's drawings included. A message
    holds decoded "pictures" (this request) or stored "image_files" (its history)."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message["role"] != "user" and not drawings:
            continue
        if message.get("pictures"):
            return index, message["pictures"][-1]
        for file_id in reversed(message.get("image_files") or []):
            if (image := store.load(user, file_id)) is not None:
                return index, image
    return None


def visual_context(messages: list[dict], index: int) -> list[dict]:
    """The system messages, then the messages from INDEX (the picture's) on, with
    IMAGE_MARKER opening the picture's message: what the vision model reads. A drawing's
    message is the assistant's; the marker then goes to the first user message after it."""
    system = [dict(m) for m in messages[:index] if m["role"] == "system"]
    current = [dict(m) for m in messages[index:]]
    while current and current[0]["role"] != "user":
        current.pop(0)
    current[0]["content"] = f"{IMAGE_MARKER}\n{current[0]['content']}".rstrip()
    return system + current

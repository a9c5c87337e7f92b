"""One settings object for the whole product.

Values come from, highest priority first: keyword arguments, environment variables with the
prefix ``OMNICOACH_`` (nested lists as JSON, e.g. ``OMNICOACH_MODELS='[...]'``), then a TOML
file: the one named by ``OMNICOACH_CONFIG``, else ``./omnicoach.toml`` when it exists.
"""

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from omnicoach.errors import ConfigError

DEFAULT_CONFIG_FILE = Path("omnicoach.toml")
REPO = Path(__file__).resolve().parents[2]  # the checkout: artifacts/ ships trained models

DEFAULT_SYSTEM_PROMPT = (
    "You are omnicoach, a friendly and careful yoga and fitness coach. "
    "Answer concisely and precisely, and mention safety when it matters."
)


class ModelOverride(BaseModel):
    """A model the user adds by path: a local Hugging Face directory or a GGUF file (chat,
    embedding), a CTranslate2 Whisper directory (speech-to-text) or a Piper voice's .onnx
    file with its .onnx.json beside it (text-to-speech)."""

    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1)
    role: Literal["chat", "embedding", "speech-to-text", "text-to-speech"]
    path: Path
    licence: str = "unknown (set `licence` in the config)"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OMNICOACH_", extra="forbid")

    data_dir: Path = Path("var")
    # Torch intra-op threads; 0 picks the measured default (see omnicoach.threads).
    threads: int = Field(default=0, ge=0)
    chat_model: str = "smollm2-135m-yoga"  # the fine-tuned one; base: smollm2-135m-instruct
    embedding_model: str = "all-minilm-l6-v2"
    speech_to_text_model: str = "whisper-tiny.en-yoga"  # the fine-tune; base: whisper-tiny.en
    text_to_speech_model: str = "piper-joe-medium"
    # CPU threads of each speech model (CTranslate2 for Whisper, ONNX Runtime for Piper);
    # 0 = the measured default, 1: Whisper is faster at 1 than at 2 on the 2-core machine, and
    # Piper speaks while the chat model writes on the other core (benchmarks/voice.py).
    speech_threads: int = Field(default=0, ge=0)
    # Longer audio is refused with 400. Checked on the decoded samples, because browser
    # recordings (WebM) carry no duration in their header.
    max_audio_seconds: float = Field(default=300, gt=0)
    # The prompt router (POST /classify, and chat: a request for a picture is routed to the
    # image generator). Its trained artifact; default: artifacts/router of this checkout.
    router_model: Path | None = None
    # The vision-language model (artifacts/vlm: projector + LoRA over the chat model) that
    # answers messages with a picture; a directory written by `omnicoach train vlm --ship`.
    vision_model: Path | None = None
    # The image generator (POST /generate, /v1/images/generations, and chat messages the router
    # labels as picture requests): default artifacts/imagegen, trained here; or any diffusers
    # pipeline directory (Stable Diffusion 1.5 / SDXL / FLUX layout, with model_index.json).
    image_model: Path | None = None
    # Sampler steps (DPM-Solver++) when a request names none.
    image_steps: int = Field(default=20, ge=1, le=100)
    # Images in chat messages: refused above this many pixels (a decompression bomb guard).
    max_image_pixels: int = Field(default=40_000_000, ge=1)
    # A message is an image request only when the router gives it at least this probability.
    router_threshold: float = Field(default=0.5, gt=0, lt=1)
    # Route chat messages with the router; off: every message is answered in words.
    chat_routing: bool = True
    # Used when a conversation has no system message; "" keeps the model template's own default.
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    # Upper bound on prompt + completion tokens; the model's own limit applies when smaller.
    context_length: int = Field(default=2048, ge=64)
    default_max_tokens: int = Field(default=512, ge=1)
    models: list[ModelOverride] = []
    # Chat engine: "fast" (Llama-architecture models: packed low-bit weights, batched decoding,
    # prefix cache) or "transformers" (any causal LM, fp32, one sequence per thread).
    engine: Literal["fast", "transformers"] = "fast"
    # Weights of the fast engine: int4 (groups of 32), int8 (per channel) or fp32.
    weights: Literal["int4", "int8", "fp32"] = "int4"
    # KV-cache slots kept for finished sequences, beyond one per concurrent generation, so
    # later prompts with the same beginning (conversation turns) reuse their keys and values.
    prefix_cache_slots: int = Field(default=8, ge=0)
    # Converted model weights; default data_dir/models. Tests share one cache across data dirs.
    model_cache: Path | None = None
    # Chat delegated to another OpenAI-compatible server (vLLM, llama.cpp's server, Ollama,
    # another omnicoach): its base URL, e.g. http://127.0.0.1:8080/v1; "" = the local model.
    # Pictures, speech, embeddings and routing stay local (models/remote_llm.py, README).
    llm_url: str = ""
    llm_api_key: str = ""  # sent as "Authorization: Bearer ..." when set
    # The remote model's name; "" asks the remote's /v1/models at start and takes the first.
    llm_model: str = ""

    # Server (omnicoach serve)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Generations that run at once (decoded together in one batch by the fast engine; each on
    # its own thread with the transformers engine), and how many more may wait; past that the
    # API answers 503 with Retry-After.
    max_concurrent_generations: int = Field(default=16, ge=1)
    max_waiting_generations: int = Field(default=32, ge=0)
    # Transcriptions (uploads and spoken chat questions) decoded and transcribed at once, and
    # how many more may wait; past that, 503 with Retry-After. Whisper already uses every core
    # for one clip, so more at once only shares them.
    max_concurrent_transcriptions: int = Field(default=2, ge=1)
    max_waiting_transcriptions: int = Field(default=16, ge=0)
    retry_after_seconds: int = Field(default=5, ge=1)
    # How long an idle keep-alive connection stays open. Longer than clients keep idle
    # connections (httpx, and so the openai client: 5 s) and than retry_after_seconds, so the
    # client always closes first: with uvicorn's 5 s, a client reusing a connection just as the
    # server closed it got a reset (httpx.ReadError) on a request the server never saw.
    keep_alive_seconds: int = Field(default=65, ge=1)
    max_request_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)

    # Storage. "" means SQLite under data_dir; any SQLAlchemy URL otherwise
    # (e.g. postgresql+psycopg://user:pass@host/omnicoach).
    database_url: str = ""
    # Uploaded files larger than this are refused with 413.
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    # Background jobs: "" means a huey SQLite queue at data_dir/jobs-queue.db; a redis://,
    # rediss:// or unix:// URL uses Redis (install the `redis` extra).
    job_queue_url: str = ""
    # API keys, comma-separated; each is a user. Keys made by `omnicoach keys create` live in
    # the database instead. With no key anywhere, auth is off (everything is the local user).
    api_keys: str = ""
    # Requests each API key may make a minute (a burst of that many, refilled continuously);
    # one more gets 429 with Retry-After. 0: no limit. Only keys are limited: with auth off
    # there is one local user, the owner, and generations are bounded by the queue (503).
    rate_limit_per_minute: int = Field(default=600, ge=0)
    # Web pages on these origins may call the API from a browser (CORS), e.g.
    # OMNICOACH_CORS_ORIGINS='["https://chat.example.org"]'. Empty: no CORS headers at all, so
    # browsers keep other sites' pages from reading the API (the built-in page is same-origin).
    cors_origins: list[str] = []

    # Retrieval: chat answers grounded in the knowledge base (data/kb) and the links of the
    # message, at most this many passages, cited by number; a request's `rag` overrides.
    rag: bool = True
    # Who writes the facts of an answer about a knowledge-base exercise: "grounded" takes them
    # from the exercise's checked entry, cited (right for the bundled 135M model, whose own
    # facts are often wrong); "generative" gives the chat model the entry's passages as
    # numbered sources to write from (for a large local or remote model).
    answer_mode: Literal["grounded", "generative"] = "grounded"
    rag_passages: int = Field(default=3, ge=1, le=10)
    # At most this many prompt tokens of sources: Bengali text costs ~1 token a letter, and each
    # prompt token delays the first answer token (README, Knowledge).
    rag_max_tokens: int = Field(default=1024, ge=0)
    # Links in chat messages (omnicoach.links): fetched, their main text used as context.
    # Only public addresses are fetched, on every redirect hop: a message must not make the
    # server read its own network (SSRF).
    link_fetching: bool = True
    # Hosts ("localhost", "wiki.intranet") or IP addresses / networks ("127.0.0.1",
    # "10.0.0.0/8") that may be fetched although they are local or private. Cloud metadata
    # addresses are never fetched. In the environment: OMNICOACH_LINK_ALLOWLIST='["127.0.0.1"]'.
    link_allowlist: list[str] = []
    # A page's body (after decompression) is read up to this size; larger pages are refused.
    max_link_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    # Deadline for reading one link, redirects included.
    link_timeout_seconds: float = Field(default=10, gt=0)

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: list[ModelOverride]) -> list[ModelOverride]:
        names = [m.name for m in models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"model names must be unique, repeated: {', '.join(duplicates)}")
        return models

    @field_validator("llm_url")
    @classmethod
    def _llm_url(cls, url: str) -> str:
        if url and not url.startswith(("http://", "https://")):
            raise ValueError(f"{url!r} is not an http(s) URL, e.g. http://127.0.0.1:8080/v1")
        return url.rstrip("/")

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        # A browser's Origin header is scheme://host[:port], nothing more: any other spelling
        # would never match, and CORS would stay silently closed.
        for origin in origins:
            scheme, sep, rest = origin.partition("://")
            if origin != "*" and (
                scheme not in ("http", "https") or not sep or not rest or "/" in rest
            ):
                raise ValueError(
                    f"{origin!r} is not an origin: write scheme://host[:port] with no path or "
                    "trailing slash, e.g. 'https://chat.example.org', or '*' for any site"
                )
        return origins

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'omnicoach.db').resolve()}"

    @property
    def files_dir(self) -> Path:
        """Uploaded files, stored once per content hash."""
        return self.data_dir / "files"

    @property
    def jobs_dir(self) -> Path:
        """Each job's output artifacts, in a folder named after the job."""
        return self.data_dir / "jobs"

    @property
    def env_api_keys(self) -> list[str]:
        return [key.strip() for key in self.api_keys.split(",") if key.strip()]

    @property
    def model_cache_dir(self) -> Path:
        """Where converted weights (e.g. the dequantised GGUF as safetensors) are kept."""
        return self.model_cache or self.data_dir / "models"

    @property
    def router_dir(self) -> Path:
        """The prompt router's trained artifact."""
        return self.router_model or REPO / "artifacts" / "router"

    @property
    def vision_dir(self) -> Path:
        """The vision-language model's trained artifact."""
        return self.vision_model or REPO / "artifacts" / "vlm"

    @property
    def lora_dir(self) -> Path:
        """Where the image generator's LoRAs (trained by POST /train) are kept."""
        return self.data_dir / "loras"

    @property
    def image_generator_dir(self) -> Path:
        """The image generator: a configured diffusers directory, or the trained artifact."""
        return self.image_model or REPO / "artifacts" / "imagegen"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get("OMNICOACH_CONFIG", DEFAULT_CONFIG_FILE))
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file))


def load_settings(**overrides) -> Settings:
    """Build the settings, turning every configuration mistake into one ConfigError."""
    named = os.environ.get("OMNICOACH_CONFIG")
    if named and not Path(named).is_file():
        raise ConfigError(f"OMNICOACH_CONFIG names {named}, which is not a file")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None
    except ValueError as exc:  # e.g. a TOML syntax error
        raise ConfigError(f"invalid settings: {exc}") from None

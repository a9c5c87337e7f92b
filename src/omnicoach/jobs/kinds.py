"""The registry of job kinds: what POST /jobs accepts and what the worker can run.

A kind is a params schema (validated when the job is created), an optional ``prepare`` that
checks the params against the caller's world and fills in defaults, and a ``run`` function
that does the work and returns the job's result (a JSON object).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from omnicoach.jobs import (
    asr_job,
    chat_job,
    image_lora_job,
    perplexity_job,
    pretrain_job,
    router_job,
    sft_job,
    vlm_job,
)
from omnicoach.jobs.context import JobContext, Submission


def _as_given(params: BaseModel, _: Submission) -> BaseModel:
    return params


@dataclass(frozen=True)
class JobKind:
    name: str
    description: str
    params: type[BaseModel]
    run: Callable[[JobContext, Any], dict[str, Any]]
    prepare: Callable[[Any, Submission], BaseModel] = _as_given


KINDS: dict[str, JobKind] = {
    kind.name: kind
    for kind in (
        JobKind(
            name="chat",
            description="Answer many conversations (an uploaded JSONL, or questions) through "
            "the assistant, as the chat API would; the answers with their sources.",
            params=chat_job.ChatParams,
            run=chat_job.run,
            prepare=chat_job.prepare,
        ),
        JobKind(
            name="perplexity",
            description="Perplexity of a chat model on an uploaded text file (sliding window).",
            params=perplexity_job.PerplexityParams,
            run=perplexity_job.run,
            prepare=perplexity_job.prepare,
        ),
        JobKind(
            name="train_router",
            description="Fine-tune the prompt router (MiniLM + LoRA) on the bundled data or "
            "an uploaded JSONL of {prompt, label}.",
            params=router_job.RouterParams,
            run=router_job.run,
            prepare=router_job.prepare,
        ),
        JobKind(
            name="train_sft",
            description="LoRA fine-tuning of a chat model on the knowledge-base conversations "
            "or an uploaded chat JSONL.",
            params=sft_job.SFTParams,
            run=sft_job.run,
            prepare=sft_job.prepare,
        ),
        JobKind(
            name="pretrain",
            description="Pretrain a small Llama from random weights on the project's texts "
            "and generated text; compare it with SmolLM2-135M.",
            params=pretrain_job.PretrainParams,
            run=pretrain_job.run,
        ),
        JobKind(
            name="train_vlm",
            description="Train the vision-language model (LLaVA's two stages: projector, "
            "then projector + LoRA) on rendered exercise images.",
            params=vlm_job.VLMParams,
            run=vlm_job.run,
        ),
        JobKind(
            name="train_image_lora",
            description="A LoRA for the image generator from an uploaded ZIP of pictures, "
            "called up by its trigger word (POST /train).",
            params=image_lora_job.ImageLoraParams,
            run=image_lora_job.run,
            prepare=image_lora_job.prepare,
        ),
        JobKind(
            name="train_asr",
            description="Fine-tune speech to text (Whisper's decoder) on an uploaded text file "
            "of the caller's own words, spoken by synthetic voices, or on the bundled spoken "
            "exercise names; live loss and word error rate.",
            params=asr_job.AsrParams,
            run=asr_job.run,
            prepare=asr_job.prepare,
        ),
    )
}

"""One stage-2 training step of the vision-language model, four ways, in the same run: fp32 or
bf16 autocast, and the LM head over every position (Hugging Face's loss) or only where an
answer token is predicted (models/vision_language.language_loss). The step is projector +
LoRA (r 16, every linear layer) on the bundled chat model, forward and backward, on a batch of
real stage-2 conversations (their prompt, image positions and answers).

    .venv/bin/python benchmarks/vlm_step.py [--batch 16] [--repeats 3]

Needs the rendered images and their LLaVA JSON (README, Seeing). The last line is
`speed-up of the training step: X.XX× (bf16, answer-only head vs fp32, full head)`.
"""

import argparse
import statistics
import time
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model

from omnicoach.config import DEFAULT_SYSTEM_PROMPT
from omnicoach.data.vlm_dataset import load_llava
from omnicoach.models.vision_language import (
    IGNORE,
    Projector,
    embed_with_image,
    language_loss,
    tokenize_with_image,
)
from omnicoach.threads import apply_threads
from omnicoach.training.sft import collate
from omnicoach.training.vlm import load_chat_model

INSTRUCT = Path("data/exercise-images/train/instruct.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-tokens", type=int, default=10)
    args = parser.parse_args()
    apply_threads(2)
    tokenizer, llm = load_chat_model("smollm2-135m-yoga", Path("var/models"))
    for parameter in llm.parameters():
        parameter.requires_grad = False
    lora = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
    llm = get_peft_model(llm, lora)
    projector = Projector(1280, llm.config.hidden_size, args.image_tokens)

    rows = []
    for sample in load_llava(INSTRUCT)[: args.batch]:
        messages = [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, *sample["messages"]]
        rows.append(tokenize_with_image(tokenizer, messages, args.image_tokens, 192))
    batch = collate(rows, tokenizer.pad_token_id or tokenizer.eos_token_id)
    features = torch.randn(args.batch, 1, 1280)  # the step's cost does not depend on them
    starts = [row["image_start"] for row in rows]
    answer_tokens = int((batch["labels"] != IGNORE).sum())
    print(f"batch: {args.batch} conversations, {batch['input_ids'].numel()} positions, "
          f"{answer_tokens} answer tokens")  # fmt: skip

    def step(bf16: bool, answers_only: bool) -> float:
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            embeds = embed_with_image(llm, projector, batch["input_ids"], features, starts)
            if answers_only:
                loss = language_loss(llm, embeds, batch["attention_mask"], batch["labels"])
            else:
                mask, labels = batch["attention_mask"], batch["labels"]
                loss = llm(inputs_embeds=embeds, attention_mask=mask, labels=labels).loss
        loss.backward()
        llm.zero_grad(set_to_none=True)
        projector.zero_grad(set_to_none=True)
        return time.perf_counter() - started

    seconds = {}
    for bf16 in (False, True):
        for answers_only in (False, True):
            step(bf16, answers_only)  # warm-up
            times = [step(bf16, answers_only) for _ in range(args.repeats)]
            seconds[bf16, answers_only] = statistics.median(times)
            name = f"{'bf16' if bf16 else 'fp32'}, {'answer-only' if answers_only else 'full'} head"
            print(f"{name}: {seconds[bf16, answers_only]:.2f} s per step")
    ratio = seconds[False, False] / seconds[True, True]
    what = "bf16, answer-only head vs fp32, full head"
    print(f"speed-up of the training step: {ratio:.2f}× ({what})")


if __name__ == "__main__":
    main()

"""LoRA adapters trained here (artifacts/sft-lora), merged into the model they were trained on."""

from pathlib import Path

from transformers import PreTrainedModel

from omnicoach.artifacts import read_manifest
from omnicoach.errors import ModelFileError


def merge_lora(model: PreTrainedModel, adapter_dir: Path) -> PreTrainedModel:
    """MODEL with the adapter's low-rank updates added to its weights (W + B·A·alpha/r).

    The adapter is verified against its manifest first, so a corrupt or edited file is a clear
    error rather than a subtly different model. The returned model has no peft wrappers left.
    """
    from peft import PeftModel

    adapter_dir = Path(adapter_dir)
    manifest = read_manifest(adapter_dir)  # raises ModelFileError, naming the rebuild command
    try:
        merged = PeftModel.from_pretrained(model, adapter_dir / "adapter").merge_and_unload()
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelFileError(
            f"cannot apply the LoRA adapter in {adapter_dir}: {exc}; "
            f"rebuild it with: {manifest['command']}"
        ) from exc
    merged.eval()
    return merged

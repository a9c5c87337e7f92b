"""The "train_asr" job: teach speech to text the caller's own words, or the knowledge base's
exercise names.

With ``file_id``, an uploaded text file of sentences (one a line, in the caller's words: names
of their classes, poses, equipment) is spoken by several synthetic speakers (Piper's voice and
espeak-ng's accents, in rooms and over noise, as the bundled set is; data/speech_dataset.py),
and Whisper's decoder is fine-tuned on that. Without it, on the bundled spoken questions
(data/speech, built on first use: ~5 minutes). Loss per step and validation loss and word error
rate per epoch are the job's metrics, so the page draws them live.

The trained part lands in the job's folder (``asr/``, also asr.zip) beside the model converted
for serving (``whisper/``, a CTranslate2 directory): add it to the settings' ``models`` as a
speech-to-text model and name it in ``speech_to_text_model`` to serve it.
"""

import json
import shutil

from pydantic import BaseModel, Field

from omnicoach.config import REPO
from omnicoach.data.speech_dataset import build, read_lines, speak_lines
from omnicoach.files import FileStore
from omnicoach.jobs.context import JobContext, Submission
from omnicoach.jobs.uploads import checked_upload
from omnicoach.models.bundled import whisper_tiny_en_dir
from omnicoach.models.whisper_weights import fine_tuned_dir
from omnicoach.training.asr import AsrTraining, train_asr

BUNDLED_SPEECH = REPO / "data" / "speech"


class AsrParams(BaseModel):
    """The job's settings; the training's defaults are AsrTraining's."""

    model_config = {"extra": "forbid"}

    file_id: str | None = Field(
        default=None,
        description="An uploaded UTF-8 text file of the caller: one sentence a line, using the "
        "words to be recognised (2 to 2,000 lines). Default: the bundled spoken questions about "
        "the knowledge base's exercises.",
    )
    method: str = Field(
        default=AsrTraining.method,
        pattern="^(decoder|lora)$",
        description="decoder: train the decoder's layers; lora: a LoRA adapter on them.",
    )
    voices_per_line: int = Field(
        default=4, ge=1, le=12, description="Synthetic speakers saying each uploaded line."
    )
    epochs: int = Field(default=AsrTraining.epochs, ge=1, le=30)
    batch_size: int = Field(default=AsrTraining.batch_size, ge=1, le=64)
    learning_rate: float | None = Field(default=None, gt=0, le=1e-2)
    max_steps: int | None = Field(default=None, ge=1, description="Stop after this many steps.")
    seed: int = AsrTraining.seed


def prepare(params: AsrParams, caller: Submission) -> AsrParams:
    if params.file_id is not None:
        checked_upload(caller, params.file_id, read_lines)
    return params


def run(ctx: JobContext, params: AsrParams) -> dict:
    speech = ctx.artifact_dir / "speech"
    if params.file_id is not None:
        files = FileStore(ctx.settings)
        lines = read_lines(files.path(files.get(ctx.db, ctx.user_id, params.file_id)))
        ctx.log(f"speaking {len(lines)} sentences, {params.voices_per_line} voices each")
        speak_lines(lines, speech, params.seed, params.voices_per_line)
    elif (BUNDLED_SPEECH / "train.jsonl").is_file():
        speech = BUNDLED_SPEECH
    else:
        ctx.log("building the bundled spoken questions (first time only, ~5 minutes)")
        build(speech, params.seed)
    out = ctx.artifact_dir / "asr"
    config = AsrTraining(
        base=whisper_tiny_en_dir(),
        speech=speech,
        out=out,
        method=params.method,
        epochs=params.epochs,
        batch_size=params.batch_size,
        learning_rate=params.learning_rate,
        max_steps=params.max_steps,
        seed=params.seed,
        command=f"job train_asr {params.model_dump_json()}",
    )

    def on_step(step: int, total: int, loss: float) -> None:
        ctx.metric("loss", step, loss)
        ctx.progress(0.95 * step / total)  # converting for serving takes the rest

    def on_epoch(epoch: int, loss: float, wer: float) -> None:
        ctx.metric("validation_loss", epoch, loss)
        ctx.metric("validation_wer", epoch, wer)

    def clips(rows):  # encoding the audio first is minutes without a report: stay cancellable
        for row in rows:
            ctx.check_cancelled()
            yield row

    manifest = train_asr(config, on_step, on_epoch, log=ctx.log, progress=clips)
    shutil.make_archive(str(ctx.artifact_dir / "asr"), "zip", out)
    ctx.add_artifact("asr.zip")
    ctx.add_artifact("manifest.json").write_text(json.dumps(manifest, indent=2))
    served = fine_tuned_dir(config.base, out, ctx.artifact_dir)
    whisper = served.rename(ctx.artifact_dir / "whisper")
    ctx.log(
        f"to serve it, add {{name, role: speech-to-text, path: {whisper}}} to the settings' "
        "models and name it in speech_to_text_model"
    )
    return {
        "method": params.method,
        "validation_wer": manifest["metrics"]["wer"],
        "epoch_kept": manifest["metrics"]["epoch"],
        "clips": manifest["data"],
        "model_dir": str(whisper),
    }

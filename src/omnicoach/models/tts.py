"""Text to speech: a Piper voice (VITS in ONNX) through piper-tts, one chunk per sentence.

piper-tts is GPL-3.0-or-later. It is used only here, behind ``SpeechSynthesizer``: the rest
of omnicoach sees text in and float32 samples out, so another engine can replace it without
touching the API or the page.
"""

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime
from piper import PiperVoice, SynthesisConfig
from piper.config import PiperConfig

from omnicoach.errors import ModelFileError

MIN_SPEED, MAX_SPEED = 0.25, 4.0  # OpenAI's range for /v1/audio/speech


class SpeechSynthesizer:
    def __init__(self, onnx_path: Path, name: str, threads: int):
        config_path = onnx_path.with_name(onnx_path.name + ".json")
        for needed in (onnx_path, config_path):
            if not needed.is_file():
                raise ModelFileError(
                    f"the Piper voice file {needed} does not exist; a voice is an .onnx file "
                    "with its .onnx.json beside it"
                )
        # PiperVoice.load offers no thread setting, so the ONNX Runtime session is built here:
        # while an answer is spoken sentence by sentence, the chat model is still writing on
        # another core (benchmarks/voice.py), and idle worker threads must not spin on it.
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
            session = onnxruntime.InferenceSession(
                str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
            self.voice = PiperVoice(session=session, config=PiperConfig.from_dict(config))
        except Exception as exc:  # bad JSON, missing keys, a damaged ONNX file
            raise ModelFileError(f"cannot load the Piper voice {onnx_path.name}: {exc}") from exc
        self.name = name
        # The voice's own name (its dataset, "joe" for en_US-joe-medium).
        self.voice_name = str(config.get("dataset") or onnx_path.stem)
        self.sample_rate = self.voice.config.sample_rate

    def synthesize(self, text: str, speed: float = 1.0) -> Iterator[np.ndarray]:
        """Float32 mono samples in [-1, 1] at ``sample_rate``, one array per sentence, each
        yielded as soon as it is made. SPEED 2.0 talks twice as fast."""
        if not MIN_SPEED <= speed <= MAX_SPEED:
            raise ValueError(f"speed must be between {MIN_SPEED} and {MAX_SPEED}, got {speed}")
        # length_scale stretches every phoneme: the voice's own default, divided by speed.
        config = SynthesisConfig(length_scale=self.voice.config.length_scale / speed)
        for chunk in self.voice.synthesize(text, config):
            if chunk.audio_float_array.size:
                yield chunk.audio_float_array

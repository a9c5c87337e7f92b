"""Voice speed: the server's transcription against raw faster-whisper on the same files in the
same run, text-to-speech real-time factor, and the voice loop's latency.

- Transcription: eight spoken fitness sentences (espeak-ng, ~3 s each) and one ~25 s
  paragraph, transcribed by faster-whisper in this process (the reference: the bundled model
  directory, int8, VAD on, given the file's path) and by a real server through
  /v1/audio/transcriptions (upload, decode, checks, transcription, JSON) with its default
  model (the fine-tune) and with the bundled base. Medians of --repeats; the targets are
  server ≤ 1.1× raw and the fine-tune ≤ 1.2× the base.
- Threads: raw faster-whisper and Piper at 1 and 2 threads (the speech_threads default).
- Text to speech: Piper in this process and /v1/audio/speech (wav) on a 60-word paragraph:
  real-time factor (seconds of work per second of audio) and the first byte's time.
- Voice loop, as the page does it: from the start of the question's upload to the first byte
  of the spoken answer's audio: transcribe → stream the chat answer → cut its first sentence
  → /v1/audio/speech → first byte. Target ≤ 2.5 s on 2 cores.

    .venv/bin/python benchmarks/voice.py [--repeats 3]
"""

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.audio_samples import SENTENCES, espeak, wav_seconds  # noqa: E402 (sys.path above)
from tests.server_process import ServerProcess  # noqa: E402

PARAGRAPH = (
    "Start in a tall plank with your hands under your shoulders. Keep your core tight and "
    "your back flat, and breathe slowly. Lower your knees to the mat if your hips begin to "
    "sag. Then push back into downward dog, press your heels toward the floor and relax your "
    "neck. Hold the pose for five breaths before you walk your feet forward to stand."
)
CHAT = "smollm2-135m-instruct"
BASE_SPEECH_MODEL = "whisper-tiny.en"  # the default is its fine-tune
# The page's sentence boundary (web/js/speech.js): . ! ? … then a space, or a line break.
BOUNDARY = re.compile(r"[.!?…]+[\"'”’)\]*_]*\s+|\n+")


def median(values) -> float:
    return statistics.median(values)


def timed(function, repeats: int) -> float:
    """Median wall time of REPEATS calls, after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return median(times)


def make_files(folder: Path) -> list[Path]:
    files = [espeak(folder / f"sentence-{i}.wav", s) for i, s in enumerate(SENTENCES)]
    files.append(espeak(folder / "paragraph.wav", PARAGRAPH))
    return files


def raw_whisper(threads: int):
    from faster_whisper import WhisperModel

    from omnicoach.models import bundled

    model = WhisperModel(
        str(bundled.whisper_tiny_en_dir()), device="cpu", compute_type="int8", cpu_threads=threads
    )

    def transcribe(path: Path) -> str:
        segments, _ = model.transcribe(str(path), vad_filter=True)
        return "".join(s.text for s in segments)

    return transcribe


def transcription_rows(files, url: str, repeats: int) -> list[dict]:
    reference = raw_whisper(threads=1)  # the server's default speech_threads
    rows = []
    with httpx.Client(base_url=url, timeout=300) as http:

        def server(path: Path, model: str = "whisper-1") -> str:
            response = http.post(
                "/v1/audio/transcriptions",
                files={"file": (path.name, path.read_bytes())},
                data={"model": model},
            )
            response.raise_for_status()
            return response.json()["text"]

        for path in files:
            raw = timed(lambda p=path: reference(p), repeats)
            served = timed(lambda p=path: server(p), repeats)
            base = timed(lambda p=path: server(p, BASE_SPEECH_MODEL), repeats)
            rows.append(
                {
                    "file": path.name,
                    "seconds": wav_seconds(path),
                    "raw": raw,
                    "server": served,
                    "server_base": base,
                }
            )
    return rows


def _total(rows: list[dict]) -> dict:
    keys = ("raw", "server", "server_base")
    return {"file": "all", "seconds": None} | {k: sum(r[k] for r in rows) for k in keys}


def thread_rows(files, repeats: int) -> list[dict]:
    from omnicoach.models import bundled
    from omnicoach.models.tts import SpeechSynthesizer

    paragraph = files[-1]
    rows = []
    for threads in (1, 2):
        whisper = raw_whisper(threads)
        voice = SpeechSynthesizer(bundled.piper_joe_onnx(), "piper", threads)
        audio = sum(len(c) for c in voice.synthesize(PARAGRAPH)) / voice.sample_rate
        rows.append(
            {
                "threads": threads,
                "whisper_rtf": timed(lambda w=whisper: w(paragraph), repeats)
                / wav_seconds(paragraph),
                "piper_rtf": timed(lambda v=voice: list(v.synthesize(PARAGRAPH)), repeats) / audio,
            }
        )
    return rows


def speech_row(url: str, repeats: int) -> dict:
    from omnicoach.models import bundled
    from omnicoach.models.tts import SpeechSynthesizer

    voice = SpeechSynthesizer(bundled.piper_joe_onnx(), "piper", 1)
    audio = sum(len(c) for c in voice.synthesize(PARAGRAPH)) / voice.sample_rate
    in_process = timed(lambda: list(voice.synthesize(PARAGRAPH)), repeats)
    firsts, totals = [], []
    with httpx.Client(base_url=url, timeout=300) as http:
        body = {"model": "tts-1", "voice": "alloy", "input": PARAGRAPH, "response_format": "wav"}
        for _ in range(repeats + 1):
            start = time.perf_counter()
            first = None
            with http.stream("POST", "/v1/audio/speech", json=body) as response:
                for chunk in response.iter_bytes():
                    if chunk and first is None:
                        first = time.perf_counter() - start
            firsts.append(first)
            totals.append(time.perf_counter() - start)
    return {
        "audio": audio,
        "in_process_rtf": in_process / audio,
        "server_rtf": median(totals[1:]) / audio,
        "first_byte": median(firsts[1:]),
    }


def first_sentence(deltas) -> tuple[str, float]:
    """The first sentence of a streamed answer, as the page cuts it, and when it was done."""
    text = ""
    for delta in deltas:
        text += delta
        match = next(
            (m for m in BOUNDARY.finditer(text) if re.search(r"\w", text[: m.end()])), None
        )
        if match:
            return text[: match.end()].strip(), time.perf_counter()
    return text.strip(), time.perf_counter()


def voice_loop(http: httpx.Client, path: Path) -> dict:
    start = time.perf_counter()
    response = http.post(
        "/v1/audio/transcriptions",
        files={"file": (path.name, path.read_bytes())},
        data={"model": "whisper-1"},
    )
    question = response.json()["text"]
    transcribed = time.perf_counter()
    body = {
        "model": CHAT,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": 128,
        "temperature": 0,
        "stream": True,
    }
    first_token = None

    with http.stream("POST", "/v1/chat/completions", json=body) as chat:

        def deltas():
            nonlocal first_token
            for line in chat.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                delta = json.loads(line[6:])["choices"][0]["delta"].get("content")
                if delta:
                    first_token = first_token or time.perf_counter()
                    yield delta

        sentence, sentence_done = first_sentence(deltas())
        speech = {"model": "tts-1", "voice": "alloy", "input": sentence, "response_format": "mp3"}
        with http.stream("POST", "/v1/audio/speech", json=speech) as spoken:
            next(spoken.iter_bytes())
            first_audio = time.perf_counter()
    return {
        "transcribe": transcribed - start,
        "ttft": first_token - transcribed,
        "sentence": sentence_done - first_token,
        "speech": first_audio - sentence_done,
        "total": first_audio - start,
        "words": len(sentence.split()),
    }


def loop_rows(files, url: str) -> list[dict]:
    with httpx.Client(base_url=url, timeout=300) as http:
        voice_loop(http, files[0])  # warm-up
        return [voice_loop(http, path) for path in files[:-1]]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()

    with tempfile.TemporaryDirectory() as folder:
        files = make_files(Path(folder))
        threads = thread_rows(files, args.repeats)
        with ServerProcess(Path(folder) / "server.log") as server:
            transcription = transcription_rows(files, server.url, args.repeats)
            speech = speech_row(server.url, args.repeats)
            loop = loop_rows(files, server.url)

    print(f"\nOn {cores} cores; medians of {args.repeats} runs after a warm-up.\n")
    print(
        "| audio | length | raw faster-whisper (bundled) | server, default (fine-tuned) "
        "| server / raw | server, bundled base | default / base |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in transcription + [_total(transcription)]:
        cells = [r["file"], f"{r['seconds']:.1f} s" if r["seconds"] else ""]
        cells += [f"{r[k]:.3f} s" for k in ("raw", "server")]
        cells.append(f"{r['server'] / r['raw']:.2f}×")
        cells += [f"{r['server_base']:.3f} s", f"{r['server'] / r['server_base']:.2f}×"]
        print("| " + " | ".join(cells) + " |")

    print("\n| threads | Whisper real-time factor | Piper real-time factor |")
    print("|---|---|---|")
    for r in threads:
        print(f"| {r['threads']} | {r['whisper_rtf']:.3f} | {r['piper_rtf']:.3f} |")

    print(f"\n| text to speech ({speech['audio']:.1f} s of audio) | value |")
    print("|---|---|")
    print(f"| real-time factor, in process | {speech['in_process_rtf']:.3f} |")
    print(f"| real-time factor, /v1/audio/speech (wav) | {speech['server_rtf']:.3f} |")
    print(f"| first byte, /v1/audio/speech | {speech['first_byte']:.3f} s |")

    print("\n| voice loop | median | max |")
    print("|---|---|---|")
    names = {
        "transcribe": "transcription (upload to text)",
        "ttft": "chat: first token",
        "sentence": "chat: first sentence complete",
        "speech": "speech: first audio byte",
        "total": "**end of question → first audio byte**",
    }
    for key, name in names.items():
        values = [r[key] for r in loop]
        print(f"| {name} | {median(values):.3f} s | {max(values):.3f} s |")
    print(f"\nfirst sentences: {median([r['words'] for r in loop]):.0f} words (median)")


if __name__ == "__main__":
    main()

// Recording a voice message: the microphone through MediaRecorder (WebM/Opus where the
// browser has it), with a live input level from an AnalyserNode for the meter.

/** A recording failure, worded for the person at the microphone. */
export class RecorderError extends Error {
  constructor(message) {
    super(message);
    this.name = "RecorderError";
  }
}

// What the server decodes best and browsers record: Chromium and Firefox do WebM/Opus, Safari
// does MP4/AAC (the browser's own choice, when none of these is available).
const TYPES = ["audio/webm;codecs=opus", "audio/webm", "audio/ogg;codecs=opus", "audio/mp4"];

/** A file name whose extension matches the recording's type, for the upload. */
export function recordingName(type) {
  const extension = (type.match(/^audio\/(\w+)/) || [])[1] || "webm";
  return `recording.${extension}`;
}

export class VoiceRecorder {
  /** onLevel(level in 0..1) is called about once a frame while recording. */
  constructor({ onLevel = () => {} } = {}) {
    this.onLevel = onLevel;
    this.chunks = [];
  }

  async start() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new RecorderError(
        window.isSecureContext
          ? "This browser cannot record audio."
          : "The microphone works only on a secure page: open omnicoach over https or at " +
            "localhost, or upload an audio file instead.",
      );
    }
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (error) {
      throw new RecorderError(microphoneProblem(error));
    }
    const type = TYPES.find((candidate) => MediaRecorder.isTypeSupported(candidate));
    this.recorder = new MediaRecorder(this.stream, type ? { mimeType: type } : {});
    this.recorder.addEventListener("dataavailable", (event) => {
      if (event.data.size) this.chunks.push(event.data);
    });
    this.recorder.start();
    this.meter();
  }

  /** The level meter: the input's loudness (RMS, scaled so speech fills most of the bar). */
  meter() {
    this.context = new AudioContext();
    const analyser = this.context.createAnalyser();
    analyser.fftSize = 1024;
    this.context.createMediaStreamSource(this.stream).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const tick = () => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const sample of samples) sum += sample * sample;
      this.onLevel(Math.min(1, Math.sqrt(sum / samples.length) * 5));
      this.frame = requestAnimationFrame(tick);
    };
    tick();
  }

  /** Stop and resolve with the recording as a Blob. */
  stop() {
    return new Promise((resolve, reject) => {
      this.recorder.addEventListener(
        "stop",
        () => {
          const blob = new Blob(this.chunks, { type: this.recorder.mimeType || "audio/webm" });
          if (blob.size) resolve(blob);
          else reject(new RecorderError("Nothing was recorded. Check the microphone and retry."));
        },
        { once: true },
      );
      this.release();
    });
  }

  /** Stop and throw the recording away. */
  cancel() {
    this.chunks = [];
    this.release();
  }

  /** Stop the recorder, the meter and the microphone itself (the browser's red dot goes). */
  release() {
    cancelAnimationFrame(this.frame);
    if (this.recorder && this.recorder.state !== "inactive") this.recorder.stop();
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    if (this.context) this.context.close().catch(() => {});
    this.onLevel(0);
  }
}

function microphoneProblem(error) {
  if (error.name === "NotAllowedError" || error.name === "SecurityError") {
    return "Microphone access was refused. Allow it in the browser's site settings, then retry.";
  }
  if (error.name === "NotFoundError" || error.name === "OverconstrainedError") {
    return "No microphone was found. Connect one, or upload an audio file instead.";
  }
  if (error.name === "NotReadableError") {
    return "The microphone is in use by another program, or not working.";
  }
  return `Could not start the microphone: ${error.message || error.name}`;
}

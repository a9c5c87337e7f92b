// Speaking answers aloud while they stream: the text is cut into sentences as it arrives,
// each finished sentence is sent to /v1/audio/speech, and the audio is played in order. So the
// first sentence is heard while the model is still writing the rest.

// A sentence ends at . ! ? or … (with any closing quotes or brackets) followed by a space, or
// at a line break (list items and headings end without punctuation). "3.5" and "e.g.x" do not
// end one: a space must follow.
const BOUNDARY = /[.!?…]+["'”’)\]*_]*\s+|\n+/g;

/** Split finished sentences off the front of `text`: [sentences, the unfinished rest]. */
export function takeSentences(text) {
  const sentences = [];
  let start = 0;
  let pending = "";
  for (const match of text.matchAll(BOUNDARY)) {
    const end = match.index + match[0].length;
    pending += text.slice(start, end);
    start = end;
    // A piece with nothing to say ("1." of a numbered list, a lone "**") joins the next one.
    if (speakable(pending)) {
      sentences.push(pending);
      pending = "";
    }
  }
  return [sentences, pending + text.slice(start)];
}

/** What to say for a piece of Markdown: its words, without the marks, links' URLs or code. */
export function speakable(markdown) {
  return markdown
    .replace(/```[\s\S]*?(```|$)/g, " ") // code blocks are not read out
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1") // [text](url) → text
    .replace(/https?:\/\/\S+/g, " ")
    .replace(/^\s*(#{1,6}|>|[-*+]|\d+[.)])\s+/gm, "") // headings, quotes, list markers
    .replace(/[*_`~|#]+/g, "") // emphasis, inline code, table bars
    .replace(/\s+/g, " ")
    .trim()
    .replace(/^[^\p{L}\p{N}]+$/u, ""); // punctuation alone says nothing
}

let sharedContext = null;

/**
 * The page's AudioContext, created or resumed now. Browsers let a page start sound only
 * during a user's click or key press, so this is called from those handlers; playback that
 * starts later (when the first sentence's audio arrives) then works.
 */
export function unlockAudio() {
  if (!sharedContext) sharedContext = new AudioContext();
  if (sharedContext.state === "suspended") sharedContext.resume().catch(() => {});
  return sharedContext;
}

/**
 * One answer read aloud. push(delta) as text streams in, end() when it is complete, stop()
 * to fall silent at once. fetchAudio(text, signal) resolves to encoded audio (an ArrayBuffer);
 * onState("speaking" | "idle") follows the playback; onError(error) reports the first failure
 * (then the rest of the answer is not spoken).
 */
export class SpeechPlayer {
  constructor({ fetchAudio, onState = () => {}, onError = () => {} }) {
    this.fetchAudio = fetchAudio;
    this.onState = onState;
    this.onError = onError;
    this.controller = new AbortController();
    this.context = unlockAudio();
    this.text = "";
    this.source = null;
    this.stopped = false;
    // Two chains keep the order: sentences are synthesised one at a time (the server's cores
    // are busy writing the answer too), and each plays once the one before has finished.
    this.fetching = Promise.resolve();
    this.playing = Promise.resolve();
    this.queued = 0;
  }

  push(delta) {
    const [sentences, rest] = takeSentences(this.text + delta);
    this.text = rest;
    for (const sentence of sentences) this.say(speakable(sentence));
  }

  end() {
    const rest = speakable(this.text);
    this.text = "";
    if (rest) this.say(rest);
  }

  stop() {
    this.stopped = true;
    this.controller.abort();
    if (this.source) this.source.stop();
    this.onState("idle");
  }

  say(sentence) {
    if (this.stopped) return;
    const { signal } = this.controller;
    const audio = (this.fetching = this.fetching
      .catch(() => {})
      .then(() => this.fetchAudio(sentence, signal))
      .then((bytes) => this.context.decodeAudioData(bytes)));
    this.queued += 1;
    this.playing = this.playing
      .then(() => audio)
      .then((buffer) => this.play(buffer))
      .catch((error) => {
        if (!this.stopped) {
          this.stop();
          this.onError(error);
        }
      })
      .finally(() => {
        this.queued -= 1;
        if (!this.queued && !this.stopped) this.onState("idle");
      });
  }

  play(buffer) {
    if (this.stopped) return undefined;
    return new Promise((resolve) => {
      const source = this.context.createBufferSource();
      source.buffer = buffer;
      source.connect(this.context.destination);
      source.addEventListener("ended", resolve, { once: true });
      this.source = source;
      this.onState("speaking");
      source.start();
    });
  }
}

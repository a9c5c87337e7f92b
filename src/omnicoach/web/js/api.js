// Talking to the omnicoach server: JSON calls, the streamed chat completion, and the generic
// helpers the Jobs view uses (a multipart POST, a download, a stream of named events).
// URLs are relative to the page, so the page also works behind a proxy's path prefix.

/** An API failure, with what the page needs to explain it and offer a retry. */
export class ApiError extends Error {
  /**
   * kind: "http" (the server answered with an error status), "network" (no answer at all),
   * "cut" (the stream stopped before its end), "stream" (an error event inside the stream).
   */
  constructor(
    message,
    {
      kind = "http",
      status = 0,
      code = null,
      retryAfter = null,
      param = null,
      problems = null,
    } = {},
  ) {
    super(message);
    this.name = "ApiError";
    this.kind = kind;
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    this.param = param; // the request field at fault, when the server names one
    this.problems = problems; // omnicoach's extension: every problem, when there are several
  }
}

let apiKey = "";

/** The Bearer key sent with every API call ("" sends none). */
export function setApiKey(key) {
  apiKey = (key || "").trim();
}

function headers(extra = {}) {
  return apiKey ? { ...extra, Authorization: `Bearer ${apiKey}` } : extra;
}

// The server answers errors in OpenAI's shape: {"error": {"message", "type", "code"}}.
async function errorFrom(response) {
  let message = `${response.status} ${response.statusText}`.trim();
  let code = null;
  let param = null;
  let problems = null;
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) {
      message = body.error.message;
      code = body.error.code ?? null;
      param = body.error.param ?? null;
      if (Array.isArray(body.error.problems)) problems = body.error.problems.map(String);
    }
  } catch {
    // Not JSON (a proxy's error page, say): the status line is all we have.
  }
  const retryAfter = Number(response.headers.get("Retry-After")) || null;
  return new ApiError(message, { status: response.status, code, retryAfter, param, problems });
}

/** One JSON call; resolves to the parsed body, rejects with ApiError. */
export async function api(method, path, body) {
  const init = { method, headers: headers() };
  if (body !== undefined) {
    init.headers = headers({ "Content-Type": "application/json" });
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError("Could not reach the server.", { kind: "network" });
  }
  if (!response.ok) throw await errorFrom(response);
  return response.json();
}

/**
 * POST a streamed chat completion: onOpen() once the server accepts it (from then on it
 * stores the question and the answer), then onDelta(text) for each piece of the answer.
 * Resolves with the finish reason once "data: [DONE]" arrives. Aborting `signal` rejects
 * with the browser's AbortError (the caller checks signal.aborted); everything else rejects
 * with ApiError.
 */
export async function streamChat(
  body,
  { signal, onOpen = () => {}, onDelta, onRoute = () => {}, onSources = () => {} },
) {
  let response;
  try {
    response = await fetch("v1/chat/completions", {
      method: "POST",
      headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
      body: JSON.stringify({ ...body, stream: true }),
      signal,
    });
  } catch (error) {
    if (signal.aborted) throw error;
    throw new ApiError("Could not reach the server.", { kind: "network" });
  }
  if (!response.ok) throw await errorFrom(response);
  onOpen();

  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let finishReason = null;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n?/g, "\n");
      // Server-sent events end with a blank line; a partial event waits for the next read.
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = event
          .split("\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).trimStart())
          .join("\n");
        if (!data) continue;
        if (data === "[DONE]") return finishReason;
        const chunk = JSON.parse(data);
        if (chunk.error) {
          throw new ApiError(chunk.error.message || "The answer failed.", {
            kind: "stream",
            code: chunk.error.code ?? null,
          });
        }
        if (chunk.route) onRoute(chunk.route); // where the prompt router sent the message
        if (chunk.sources) onSources(chunk.sources); // what the answer's [1], [2]… cite
        const choice = chunk.choices && chunk.choices[0];
        if (choice && choice.delta && choice.delta.content) onDelta(choice.delta.content);
        if (choice && choice.finish_reason) finishReason = choice.finish_reason;
      }
    }
  } catch (error) {
    if (signal.aborted || error instanceof ApiError) throw error;
    throw new ApiError("The connection was lost before the answer was finished.", { kind: "cut" });
  }
  // The body ended without [DONE]: the server or the network dropped us mid-answer.
  throw new ApiError("The connection closed before the answer was finished.", { kind: "cut" });
}

/**
 * A stored file's bytes (GET v1/files/{id}/content, with the page's key: an <img src> could
 * not send it). Resolves to a Blob typed as the server sniffed it; rejects with ApiError, or
 * with the browser's AbortError once `signal` aborts.
 */
export async function fileContent(id, { signal } = {}) {
  let response;
  try {
    response = await fetch(`v1/files/${encodeURIComponent(id)}/content`, {
      headers: headers(),
      signal,
    });
  } catch (error) {
    if (signal && signal.aborted) throw error;
    throw new ApiError("Could not reach the server.", { kind: "network" });
  }
  if (!response.ok) throw await errorFrom(response);
  return response.blob();
}

/** POST a request whose answer is not JSON; resolves to the Response, rejects with ApiError. */
async function post(path, init) {
  let response;
  try {
    response = await fetch(path, { method: "POST", ...init });
  } catch (error) {
    if (init.signal && init.signal.aborted) throw error;
    throw new ApiError("Could not reach the server.", { kind: "network" });
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

/**
 * Transcribe a recording or an audio file: resolves to {text, warning} (warning is set when
 * the server thinks the transcript is probably wrong).
 */
export async function transcribe(audio, filename, model, { signal } = {}) {
  const form = new FormData();
  form.append("file", audio, filename);
  form.append("model", model);
  // No Content-Type header: the browser writes multipart/form-data with its boundary.
  const response = await post("v1/audio/transcriptions", { headers: headers(), body: form, signal });
  const body = await response.json();
  return { text: body.text || "", warning: body.warning || null };
}

/** Speech for `text` as encoded audio bytes (an ArrayBuffer in `format`). */
export async function speech(text, { model, voice, format, signal }) {
  const response = await post("v1/audio/speech", {
    headers: headers({ "Content-Type": "application/json" }),
    body: JSON.stringify({ model, voice, input: text, response_format: format }),
    signal,
  });
  return response.arrayBuffer();
}

/** POST a multipart form (FormData); resolves to the parsed JSON answer, rejects with ApiError. */
export async function postForm(path, form, { signal } = {}) {
  // No Content-Type header: the browser writes multipart/form-data with its boundary.
  const response = await post(path, { headers: headers(), body: form, signal });
  return response.json();
}

/**
 * Any GET answer's bytes, with the page's key (a download link or an <img src> could not
 * send it). Resolves to a Blob; rejects with ApiError, or with AbortError once `signal` aborts.
 */
export async function fetchBlob(path, { signal } = {}) {
  let response;
  try {
    response = await fetch(path, { headers: headers(), signal });
  } catch (error) {
    if (signal && signal.aborted) throw error;
    throw new ApiError("Could not reach the server.", { kind: "network" });
  }
  if (!response.ok) throw await errorFrom(response);
  return response.blob();
}

/**
 * Follow a GET stream of named Server-Sent Events (EventSource cannot send the key):
 * onOpen() once the server answers, then onEvent(name, data) for each event, its data parsed
 * as JSON. Resolves when the server ends the stream; rejects with ApiError ("cut" when the
 * connection drops), or with the browser's AbortError once `signal` aborts.
 */
export async function streamEvents(path, { signal, onOpen = () => {}, onEvent }) {
  let response;
  try {
    response = await fetch(path, { headers: headers({ Accept: "text/event-stream" }), signal });
  } catch (error) {
    if (signal && signal.aborted) throw error;
    throw new ApiError("Could not reach the server.", { kind: "network" });
  }
  if (!response.ok) throw await errorFrom(response);
  onOpen();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (error) {
      if (signal && signal.aborted) throw error;
      throw new ApiError("The connection was lost.", { kind: "cut" });
    }
    if (chunk.done) return;
    buffer += chunk.value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const lines = buffer.slice(0, end).split("\n");
      buffer = buffer.slice(end + 2);
      // "event:" names it ("message" when absent); lines starting ":" are keep-alives.
      const name = lines.find((line) => line.startsWith("event:"))?.slice(6).trim() || "message";
      const data = lines
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n");
      if (data) onEvent(name, JSON.parse(data));
    }
  }
}

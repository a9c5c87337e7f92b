// The chat page: a sidebar of stored conversations, the open conversation, and a composer.
// The server is the source of truth: after every answer the page reads the conversation back,
// so what it shows is what a reload would show. Plain ES modules, no framework, no build step.

import { api, fileContent, speech, setApiKey, streamChat, transcribe } from "./api.js";
import { copyText, el, icon, iconButton } from "./dom.js";
import {
  carriesFiles,
  contentText,
  filesIn,
  isImage,
  messageContent,
  prepareImage,
  showThumbnail,
  StoredImages,
  thumbnail,
} from "./images.js";
import { JobsView, jobsRoute } from "./jobs.js";
import { renderMarkdown } from "./markdown.js";
import { recordingName, VoiceRecorder } from "./recorder.js";
import { applyTheme, loadSettings, saveSettings } from "./settings.js";
import { SpeechPlayer, unlockAudio } from "./speech.js";

// OpenAI's model and voice names: the server maps them to its configured speech models.
const SPEECH_TO_TEXT = "whisper-1";
const TEXT_TO_SPEECH = { model: "tts-1", voice: "alloy", format: "mp3" };
// Replies the prompt router gave itself (server/chat_routing.py) are stored under this name.
const ROUTER_MODEL = "omnicoach-router";

const $ = (id) => document.getElementById(id);
const ui = {
  app: $("app"),
  main: $("main"),
  sidebar: $("sidebar"),
  backdrop: $("backdrop"),
  toggleSidebar: $("toggle-sidebar"),
  closeSidebar: $("close-sidebar"),
  newChat: $("new-chat"),
  newChatTop: $("new-chat-top"),
  openJobs: $("open-jobs"),
  list: $("conversation-list"),
  historyEmpty: $("history-empty"),
  title: $("chat-title"),
  modelName: $("model-name"),
  notice: $("notice"),
  noticeText: $("notice-text"),
  noticeAction: $("notice-action"),
  noticeClose: $("notice-close"),
  messages: $("messages"),
  thread: $("thread"),
  emptyState: $("empty-state"),
  composer: $("composer"),
  input: $("composer-input"),
  send: $("send"),
  stop: $("stop"),
  attach: $("attach"),
  imageFile: $("image-file"),
  attachments: $("attachments"),
  dropZone: $("drop-zone"),
  composerNote: $("composer-note"),
  composerNoteText: $("composer-note-text"),
  composerNoteClose: $("composer-note-close"),
  imageViewer: $("image-viewer"),
  imageViewerImg: $("image-viewer-img"),
  imageViewerClose: $("image-viewer-close"),
  microphone: $("microphone"),
  audioUpload: $("audio-upload"),
  audioFile: $("audio-file"),
  recorder: $("recorder"),
  levelBar: $("level-bar"),
  recorderStatus: $("recorder-status"),
  recorderTime: $("recorder-time"),
  recordingCancel: $("recording-cancel"),
  recordingSend: $("recording-send"),
  speakToggle: $("speak-replies"),
  settingsDialog: $("settings-dialog"),
  settingsForm: $("settings-form"),
  settingsCancel: $("settings-cancel"),
  model: $("setting-model"),
  temperature: $("setting-temperature"),
  maxTokens: $("setting-max-tokens"),
  system: $("setting-system"),
  theme: $("setting-theme"),
  apiKey: $("setting-api-key"),
  confirmDialog: $("confirm-dialog"),
  confirmForm: $("confirm-form"),
  confirmText: $("confirm-text"),
  confirmCancel: $("confirm-cancel"),
  announcer: $("announcer"),
};

const narrow = window.matchMedia("(max-width: 767px)");

const state = {
  settings: loadSettings(),
  models: [], // chat models from /v1/models
  conversations: [], // most recently active first, as the API lists them
  current: null, // the open conversation's id; null for a new chat not created yet
  messages: [], // the open conversation's stored messages
  pending: null, // {text, images, content}: a question sent but not (yet) known to be stored
  live: null, // {content, status}: the answer being written, or one not read back yet
  error: null, // {error, retry}: why the last action failed, shown in the conversation
  stream: null, // {controller, cid, live}: the answer request in flight
  loading: false, // a conversation is being opened
  voice: null, // {phase: "starting" | "recording" | "transcribing", recorder, controller, …}
  speaker: null, // the SpeechPlayer reading the current answer aloud
  attachment: null, // {url, type, width, height, name}: the image for the next message
  preparing: 0, // > 0 while an image given is being read (and shrunk): the number of that try
  dragDepth: 0, // dragenter minus dragleave over the chat column, while files are dragged
};

// The open conversation's stored images, fetched with the page's key.
const storedImages = new StoredImages(fileContent);

// The Jobs view (js/jobs.js) shares the main column: see route() for how it is opened.
const jobsView = new JobsView({
  main: ui.main,
  title: ui.title,
  link: ui.openJobs,
  announce,
  askForKey: () => openSettings(ui.apiKey),
});

// ---------------------------------------------------------------- start

function init() {
  applyTheme(state.settings.theme);
  setApiKey(state.settings.apiKey);
  bindEvents();
  setSidebar(!narrow.matches);
  renderSpeakToggle();
  updateComposer();
  renderModelName();
  loadEverything();
  route();
  if (!narrow.matches) ui.input.focus(); // on phones this would pop the keyboard up
}

function loadEverything() {
  hideNotice();
  loadModels().catch(startupProblem);
  refreshConversations().catch(startupProblem);
}

// Before any chat: a missing key or an unreachable server is said once, above the chat.
function startupProblem(error) {
  if (error.status === 401) {
    showNotice("This server needs an API key.", "Enter API key", () => openSettings(ui.apiKey));
  } else if (error.kind === "network") {
    showNotice("Could not reach the server.", "Try again", loadEverything);
  } else {
    showNotice(error.message);
  }
}

async function loadModels() {
  const body = await api("GET", "v1/models");
  // "role" is omnicoach's extension; embedding models cannot chat.
  state.models = body.data.filter((model) => !model.role || model.role === "chat");
  renderModelName();
}

/** The model to ask: the saved choice if the server still has it, else the loaded default. */
function currentModel() {
  const names = state.models.map((model) => model.id);
  if (names.includes(state.settings.model)) return state.settings.model;
  const loaded = state.models.find((model) => model.loaded);
  return (loaded || state.models[0] || {}).id || "";
}

function renderModelName() {
  ui.modelName.textContent = currentModel();
}

async function refreshConversations() {
  const body = await api("GET", "conversations?limit=100");
  state.conversations = body.data;
  renderSidebar();
  renderTitle();
}

// ---------------------------------------------------------------- navigation

function idFromHash() {
  return decodeURIComponent(window.location.hash.slice(1)) || null;
}

/**
 * Show what the address names. The Jobs view's addresses (#jobs, #jobs/<job id>) are its
 * only hook into the chat: the chat is left as "New chat" leaves it (its answer stops), and
 * the view takes the main column; every other address is a conversation, as before.
 */
function route() {
  const jobId = jobsRoute(window.location.hash);
  if (jobId === undefined) {
    openConversation(idFromHash());
    return;
  }
  if (!jobsView.isOpen) openConversation(null);
  jobsView.show(jobId);
}

/** Open a conversation (null: a new chat) and record it in the address bar. */
function navigate(id) {
  if (id !== idFromHash()) {
    const url = id
      ? `#${encodeURIComponent(id)}`
      : window.location.pathname + window.location.search;
    window.history.pushState(null, "", url);
  }
  openConversation(id);
}

async function openConversation(id) {
  jobsView.hide(); // a conversation replaces the Jobs view, if it was showing
  // One answer at a time: leaving a chat stops its answer (the server keeps what was written).
  stopAnswer();
  stopSpeaking();
  storedImages.reset(); // revokes the last chat's blob: URLs
  Object.assign(state, { current: id, messages: [], pending: null, live: null, error: null });
  state.loading = Boolean(id);
  renderSidebar();
  renderThread();
  if (narrow.matches) setSidebar(false);
  if (!id) return;
  try {
    await sync();
  } catch (error) {
    if (state.current !== id) return;
    if (error.status === 404) {
      showNotice("That chat no longer exists.");
      navigate(null);
      return;
    }
    state.error = { error, retry: () => openConversation(id) };
  } finally {
    if (state.current === id) state.loading = false;
  }
  if (state.current !== id) return;
  renderThread();
  scrollToBottom();
}

/**
 * Read the open conversation back from the server. expectAnswer: an answer was started, so
 * wait (briefly) until it is stored: a stopped answer is saved just after the server notices
 * the client left.
 */
async function sync({ expectAnswer = false } = {}) {
  const cid = state.current;
  if (!cid) return;
  const knownBefore = state.messages.length;
  let stored;
  for (let attempt = 0; ; attempt++) {
    stored = (await api("GET", `conversations/${encodeURIComponent(cid)}/messages`)).data;
    if (state.current !== cid) return;
    const last = stored[stored.length - 1];
    if (!expectAnswer || (last && last.role === "assistant") || attempt >= 10) break;
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
  state.messages = stored;
  // More messages than before: the question made it. Otherwise it stays shown as pending.
  if (state.pending && stored.length > knownBefore) {
    // Its stored images are the ones just sent: show those rather than fetch them back.
    const asked = stored.slice(knownBefore).find((message) => message.role === "user");
    (asked?.images || []).forEach((id, index) => {
      if (state.pending.images[index]) storedImages.remember(id, state.pending.images[index]);
    });
    state.pending = null;
  }
  const last = stored[stored.length - 1];
  if (state.live && !state.stream && last && last.role === "assistant") state.live = null;
  renderThread();
}

// ---------------------------------------------------------------- chatting

/** Send a question: `text` and the attached image, if any (an image alone is a question too). */
function send(text) {
  const image = state.attachment;
  if (state.stream || state.preparing || (!text.trim() && !image)) return;
  const images = image ? [image.url] : [];
  state.pending = { text, images, content: messageContent(text, images) };
  state.error = null;
  ui.input.value = "";
  autosize();
  setAttachment(null);
  hideComposerNote();
  renderThread();
  scrollToBottom();
  answer(state.pending.content);
}

/**
 * Ask for an answer: to `question` (a user message's content: text, or content parts with an
 * image), or (null) to the conversation's last stored question.
 * `prepare` runs first, once the page shows an answer is coming (regenerate deletes the old
 * answer there); if it fails, Retry calls `retryPrepare`.
 */
async function answer(question, prepare = null, retryPrepare = null) {
  const live = { content: "", status: "streaming" };
  const turn = { controller: new AbortController(), cid: state.current, live };
  // Started here, still inside the click or key press that asked: browsers allow sound then.
  const speaker = state.settings.speakReplies ? startSpeaking() : null;
  Object.assign(state, { stream: turn, live, error: null });
  let prepared = !prepare;
  let accepted = false; // the server took the request: it stores the question and the answer
  renderThread();
  updateComposer();
  announce("omnicoach is answering…");
  try {
    if (prepare) await prepare();
    prepared = true;
    if (!state.models.length) await loadModels();
    if (!state.current) await createConversation(turn);
    await streamChat(requestBody(question), {
      signal: turn.controller.signal,
      onOpen: () => {
        accepted = true;
        // The server names a new chat after its first question: show that name now.
        if (!state.messages.length) refreshConversations().catch(() => {});
      },
      onRoute: (route) => {
        live.route = route;
      },
      onSources: (sources) => {
        live.sources = sources;
      },
      onDelta: (text) => {
        live.content += text;
        scheduleLiveRender();
        if (speaker) speaker.push(text);
      },
    });
    live.status = "complete";
    if (speaker) speaker.end();
    announce(live.content);
  } catch (error) {
    live.status = "incomplete";
    if (speaker) speaker.stop();
    if (turn.controller.signal.aborted) {
      announce("Answer stopped.");
    } else if (state.current === turn.cid) {
      state.error = { error, retry: prepared ? retry : retryPrepare };
    }
  }
  if (state.stream === turn) state.stream = null;
  updateComposer();
  refreshConversations().catch(() => {}); // new titles and order; failures are shown elsewhere
  if (state.current !== turn.cid) return; // the user opened another chat meanwhile
  if (!accepted) state.live = null; // nothing was stored and nothing arrived
  renderThread();
  if (!accepted && !state.current) return;
  try {
    await sync({ expectAnswer: accepted });
  } catch {
    // Keep showing what arrived; Retry reads the conversation again.
  }
}

async function createConversation(turn) {
  const conversation = await api("POST", "conversations", {});
  state.conversations.unshift(conversation);
  state.current = conversation.id;
  turn.cid = conversation.id;
  // replaceState: "back" should not return to an empty new chat.
  window.history.replaceState(null, "", `#${encodeURIComponent(conversation.id)}`);
  renderSidebar();
  renderTitle();
}

function requestBody(question) {
  const settings = state.settings;
  const messages = [];
  // The system prompt applies to this request only; the server does not store it.
  if (settings.systemPrompt.trim())
    messages.push({ role: "system", content: settings.systemPrompt });
  if (question !== null) messages.push({ role: "user", content: question });
  const body = { model: currentModel(), messages, conversation_id: state.current };
  if (settings.temperature !== null) body.temperature = settings.temperature;
  if (settings.maxTokens !== null) body.max_tokens = settings.maxTokens;
  return body;
}

function stopAnswer() {
  if (state.stream) state.stream.controller.abort();
}

/** Delete the last answer and ask for a new one to the same question. */
function regenerate() {
  const last = state.messages[state.messages.length - 1];
  if (state.stream || !last || last.role !== "assistant") return;
  const cid = state.current;
  // The old answer leaves the view at once; it comes back if the server refuses to delete it.
  state.messages = state.messages.slice(0, -1);
  const deleteOld = async () => {
    try {
      await api("DELETE", `conversations/${encodeURIComponent(cid)}/messages/${last.id}`);
    } catch (error) {
      if (state.current === cid) state.messages = [...state.messages, last];
      throw error;
    }
  };
  return answer(null, deleteOld, regenerate);
}

/** After a failure: read the conversation back, then redo whatever did not happen. */
async function retry() {
  if (state.stream) return;
  state.error = null;
  renderThread();
  try {
    if (state.current) await sync();
  } catch (error) {
    state.error = { error, retry };
    renderThread();
    return;
  }
  const last = state.messages[state.messages.length - 1];
  state.live = null;
  if (state.pending) return answer(state.pending.content); // the question never arrived
  if (last && last.role === "user") return answer(null); // asked, but no answer stored
  if (last && last.role === "assistant" && last.status === "incomplete") return regenerate();
  renderThread();
}

// ---------------------------------------------------------------- voice

/** Read answers aloud from now on (or not); kept with the other settings. */
function setSpeakReplies(on) {
  state.settings = { ...state.settings, speakReplies: on };
  saveSettings(state.settings);
  renderSpeakToggle();
  if (on) unlockAudio();
  else stopSpeaking();
  announce(on ? "Replies will be read aloud." : "Replies will not be read aloud.");
}

function renderSpeakToggle() {
  ui.speakToggle.setAttribute("aria-pressed", String(Boolean(state.settings.speakReplies)));
}

function startSpeaking() {
  stopSpeaking();
  const speaker = new SpeechPlayer({
    fetchAudio: (text, signal) => speech(text, { ...TEXT_TO_SPEECH, signal }),
    onState: (playback) => {
      if (state.speaker !== speaker) return; // an earlier answer's player, stopped
      ui.speakToggle.classList.toggle("speaking", playback === "speaking");
    },
    onError: (error) => showNotice(`Could not read the answer aloud: ${error.message}`),
  });
  state.speaker = speaker;
  return speaker;
}

function stopSpeaking() {
  if (state.speaker) state.speaker.stop();
  state.speaker = null;
  ui.speakToggle.classList.remove("speaking");
}

async function startRecording() {
  if (state.voice || state.stream) return;
  hideNotice();
  const recorder = new VoiceRecorder({
    onLevel: (level) => {
      ui.levelBar.style.transform = `scaleX(${level})`;
    },
  });
  const voice = { phase: "starting", recorder };
  state.voice = voice;
  renderVoice();
  try {
    await recorder.start();
  } catch (error) {
    if (state.voice === voice) endVoice(ui.microphone);
    showNotice(error.message);
    return;
  }
  if (state.voice !== voice) {
    recorder.cancel(); // cancelled while the microphone was starting
    return;
  }
  voice.phase = "recording";
  voice.started = Date.now();
  voice.timer = setInterval(renderRecordingTime, 250);
  renderVoice();
  ui.recordingSend.focus();
  announce("Recording. Press the send button to send it, or Escape to cancel.");
}

/** Stop recording and send the recording: its transcript becomes the question. */
async function finishRecording() {
  const voice = state.voice;
  if (!voice || voice.phase !== "recording") return;
  if (state.settings.speakReplies) unlockAudio(); // the reply is spoken after this click
  clearInterval(voice.timer);
  let recording;
  try {
    recording = await voice.recorder.stop();
  } catch (error) {
    endVoice();
    showNotice(error.message);
    return;
  }
  if (state.voice === voice) await transcribeAndSend(recording, recordingName(recording.type));
}

/** Throw away the recording, or the transcription under way. */
function cancelVoice() {
  const voice = state.voice;
  if (!voice) return;
  clearInterval(voice.timer);
  voice.recorder?.cancel();
  voice.controller?.abort();
  endVoice();
  announce(voice.phase === "transcribing" ? "Transcription cancelled." : "Recording discarded.");
}

function endVoice(focus = ui.input) {
  state.voice = null;
  renderVoice();
  focus.focus();
}

async function transcribeAndSend(audio, filename) {
  const controller = new AbortController();
  const voice = { ...(state.voice || {}), phase: "transcribing", controller };
  state.voice = voice;
  renderVoice();
  announce("Transcribing…");
  let result;
  try {
    result = await transcribe(audio, filename, SPEECH_TO_TEXT, { signal: controller.signal });
  } catch (error) {
    if (state.voice !== voice) return; // cancelled
    endVoice();
    showNotice(transcriptionProblem(error));
    return;
  }
  if (state.voice !== voice) return;
  endVoice();
  if (result.warning) showNotice(`The transcript may be wrong: ${result.warning}.`);
  send(result.text);
}

function transcriptionProblem(error) {
  if (error.code === "no_speech") {
    return "No speech was heard. Speak closer to the microphone, or check the file, and retry.";
  }
  if (error.status === 401) {
    return "This server needs an API key, or the one given is wrong. Enter it in Settings.";
  }
  if (error.kind === "network") return "Could not reach the server to transcribe the audio.";
  return `Could not transcribe the audio: ${error.message}`;
}

/** The composer shows either the text box or the recorder (recording, then transcribing). */
function renderVoice() {
  const voice = state.voice;
  const active = Boolean(voice);
  ui.recorder.hidden = !active;
  ui.input.hidden = active;
  for (const button of [ui.attach, ui.microphone, ui.audioUpload]) button.hidden = active;
  ui.recordingCancel.hidden = !active;
  ui.recordingSend.hidden = !(active && voice.phase === "recording");
  ui.recorder.classList.toggle("transcribing", active && voice.phase === "transcribing");
  ui.recorderStatus.textContent = !active
    ? ""
    : {
        starting: "Starting the microphone…",
        recording: "Recording",
        transcribing: "Transcribing…",
      }[voice.phase];
  if (!active || voice.phase !== "recording") ui.recorderTime.textContent = "";
  else renderRecordingTime();
  updateComposer();
}

function renderRecordingTime() {
  if (!state.voice || !state.voice.started) return;
  const seconds = Math.floor((Date.now() - state.voice.started) / 1000);
  const minutes = Math.floor(seconds / 60);
  ui.recorderTime.textContent = `${minutes}:${String(seconds % 60).padStart(2, "0")}`;
}

// ---------------------------------------------------------------- images

let attachAttempts = 0; // numbers the images given, so that only the latest is attached

/**
 * Attach what the user gave (picked, pasted or dropped): one image per message, as the
 * server takes it, so of several images the last is kept, and it replaces one attached
 * before. Files that are not images are refused; the note under the composer says so.
 */
async function attachFiles(files) {
  const images = files.filter(isImage);
  const refused = files.filter((file) => !isImage(file));
  hideComposerNote();
  if (!images.length) {
    if (refused.length) showComposerNote(`${notImages(refused)} Attach a photo or picture.`, true);
    return;
  }
  const chosen = images[images.length - 1];
  const notes = [];
  if (refused.length) notes.push(notImages(refused));
  if (images.length > 1) {
    notes.push(`One image per message: only the last one, “${chosen.name}”, is attached.`);
  } else if (state.attachment) {
    notes.push("One image per message: it replaces the image attached before.");
  }
  attachAttempts += 1;
  const attempt = attachAttempts;
  state.preparing = attempt;
  updateComposer();
  let image;
  try {
    image = await prepareImage(chosen);
  } catch (error) {
    if (state.preparing !== attempt) return; // a later image took its place
    state.preparing = 0;
    updateComposer();
    showComposerNote(error.message, true);
    return;
  }
  if (state.preparing !== attempt) return;
  state.preparing = 0;
  setAttachment(image);
  if (notes.length) showComposerNote(notes.join(" "), refused.length > 0);
  else announce("Image attached.");
}

function notImages(files) {
  const names = files.map((file) => `“${file.name || "file"}”`).join(", ");
  return files.length === 1 ? `${names} is not an image.` : `${names} are not images.`;
}

/** The image for the next message (null: none), shown as a thumbnail in the composer. */
function setAttachment(image) {
  state.attachment = image;
  if (!image) {
    ui.attachments.replaceChildren();
    ui.attachments.hidden = true;
    updateComposer();
    return;
  }
  const label = `Attached image “${image.name}”`;
  const remove = iconButton("close", "Remove image", removeAttachment, "attachment-remove");
  ui.attachments.replaceChildren(
    el("div", { class: "attachment" }, thumbnail({ url: image.url }, label, openImage), remove),
  );
  ui.attachments.hidden = false;
  updateComposer();
}

function removeAttachment() {
  setAttachment(null);
  hideComposerNote();
  announce("Image removed.");
  ui.input.focus();
}

function showComposerNote(text, isError = false) {
  ui.composerNoteText.textContent = text;
  ui.composerNote.classList.toggle("error", isError);
  ui.composerNote.hidden = false;
  announce(text);
}

function hideComposerNote() {
  ui.composerNote.hidden = true;
}

/** An image, larger, in the page's own dialog; closing it returns focus to `opener`. */
function openImage(url, opener) {
  ui.imageViewerImg.src = url;
  ui.imageViewerImg.alt = opener.dataset.label || "Image";
  ui.imageViewer.showModal();
  ui.imageViewerClose.focus();
  ui.imageViewer.addEventListener(
    "close",
    () => {
      ui.imageViewerImg.removeAttribute("src");
      if (opener.isConnected) opener.focus();
      else ui.input.focus();
    },
    { once: true },
  );
}

/** Paste: images on the clipboard are attached; text pastes as usual. */
function pasteImages(event) {
  const target = event.target;
  const editable = /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName) || target.isContentEditable;
  const elsewhere = target !== ui.input && (editable || target.closest("dialog"));
  if (elsewhere || state.voice) return;
  const files = filesIn(event.clipboardData);
  if (!files.length) return;
  // A file copied in a file manager may come with its path as text: only images win over it.
  const text = event.clipboardData.types.includes("text/plain");
  if (text && !files.some(isImage)) return;
  event.preventDefault();
  attachFiles(files);
}

/** Dragging files over the chat column highlights it; dropping them attaches the image. */
function bindDragAndDrop() {
  const highlight = (on) => {
    ui.dropZone.hidden = !on;
    ui.main.classList.toggle("dragging", on);
  };
  ui.main.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event.dataTransfer) || state.voice) return;
    event.preventDefault();
    state.dragDepth += 1;
    highlight(true);
  });
  ui.main.addEventListener("dragover", (event) => {
    if (!carriesFiles(event.dataTransfer) || state.voice) return;
    event.preventDefault(); // allows the drop
    event.dataTransfer.dropEffect = "copy";
  });
  ui.main.addEventListener("dragleave", (event) => {
    if (!carriesFiles(event.dataTransfer)) return;
    state.dragDepth = Math.max(0, state.dragDepth - 1);
    if (!state.dragDepth) highlight(false);
  });
  ui.main.addEventListener("drop", (event) => {
    if (!carriesFiles(event.dataTransfer)) return;
    event.preventDefault();
    state.dragDepth = 0;
    highlight(false);
    if (state.voice) return;
    attachFiles(filesIn(event.dataTransfer));
    ui.input.focus();
  });
  // Anywhere else (the sidebar, say), a dropped file must not replace the page with itself.
  for (const type of ["dragover", "drop"]) {
    document.addEventListener(type, (event) => {
      if (!carriesFiles(event.dataTransfer) || event.defaultPrevented) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "none";
    });
  }
}

// ---------------------------------------------------------------- the conversation view

function renderThread() {
  const nodes = [];
  const busy = Boolean(state.stream);
  state.messages.forEach((message, index) => {
    const last = index === state.messages.length - 1 && !state.pending && !state.live;
    nodes.push(
      message.role === "user"
        ? userNode(contentText(message.content), storedImageList(message))
        : assistantNode(message, last && !busy),
    );
  });
  if (state.pending) {
    const sent = state.pending.images.map((url) => ({ url }));
    nodes.push(userNode(state.pending.text, sent, true));
  }
  if (state.live) nodes.push(assistantNode(state.live, false));
  if (state.error) nodes.push(errorNode(state.error));
  const last = state.messages[state.messages.length - 1];
  if (last && last.role === "user" && !busy && !state.pending && !state.live && !state.error) {
    // E.g. stopped before the first word, or the server went down mid-answer.
    nodes.push(
      el(
        "div",
        { class: "unanswered" },
        el("span", {}, "This question has no answer yet."),
        el(
          "button",
          { type: "button", class: "text-button", onclick: () => answer(null) },
          "Answer it",
        ),
      ),
    );
  }
  const focusWasInThread = ui.thread.contains(document.activeElement);
  ui.thread.replaceChildren(...nodes);
  // A button that had focus may be gone: keep keyboard users in the conversation.
  if (focusWasInThread && !ui.thread.contains(document.activeElement)) ui.input.focus();
  ui.emptyState.hidden = nodes.length > 0 || state.loading;
  renderTitle();
}

/** A question: its images (thumbnails, above), its text, and a copy button for the text. */
function userNode(text, images = [], pending = false) {
  const hasText = Boolean(text.trim());
  return el(
    "article",
    { class: pending ? "message user pending" : "message user" },
    el("h2", { class: "visually-hidden" }, "You said:"),
    imageRow(images, "You sent"),
    hasText ? el("div", { class: "bubble" }, text) : null,
    hasText
      ? el("div", { class: "message-actions" }, copyButton(() => text, "Copy message"))
      : null,
  );
}

/** A stored message's images (ids of stored files; none when the server lists none). */
function storedImageList(message) {
  const ids = Array.isArray(message.images) ? message.images : [];
  return ids.map((id) => ({ id, entry: storedImages.get(id, storedImageSettled) }));
}

/** A stored image arrived (or failed): update its thumbnails where the thread shows them. */
function storedImageSettled(id, entry) {
  for (const button of ui.thread.querySelectorAll(".thumb[data-file-id]")) {
    if (button.dataset.fileId === id) showThumbnail(button, entry);
  }
}

/** Thumbnails of a message's images, each opening the image larger; null when none. */
function imageRow(images, who) {
  if (!images.length) return null;
  const thumbs = images.map((image, index) => {
    const label =
      images.length > 1 ? `${who}: image ${index + 1} of ${images.length}` : `${who}: image`;
    return thumbnail(image, label, openImage);
  });
  return el("div", { class: "message-images" }, ...thumbs);
}

function assistantNode(message, isLastStored) {
  const streaming = message.status === "streaming";
  const markdown = el("div", { class: "markdown" });
  if (streaming && !message.content) {
    markdown.append(
      el("div", { class: "typing", "aria-hidden": "true" }, el("span"), el("span"), el("span")),
    );
  } else {
    renderMarkdown(markdown, message.content);
  }
  const body = el(
    "div",
    { class: "message-body" },
    el("h2", { class: "visually-hidden" }, "omnicoach said:"),
    imageRow(streaming ? [] : storedImageList(message), "omnicoach sent"),
    markdown,
  );
  if (message.status === "incomplete") {
    body.append(el("p", { class: "status-note" }, "Stopped before the end."));
  } else if (message.status === "generating") {
    // Stored while another tab or device streams it (the server saves answers as they
    // stream): not finished, and not to be regenerated while it is written.
    body.append(
      el("p", { class: "status-note" }, "Still being written elsewhere; reload to see the rest."),
    );
  }
  const routed = routeNote(message);
  if (routed) body.insertBefore(routed, markdown);
  if (message.sources && message.sources.length) body.append(sourceList(message.sources));
  if (!streaming) {
    const actions = el(
      "div",
      { class: "message-actions" },
      copyButton(() => message.content, "Copy answer"),
    );
    if (isLastStored && message.status !== "generating") {
      actions.append(iconButton("retry", "Regenerate answer", regenerate));
    }
    body.append(actions);
  }
  // aria-busy: assistive technology waits for the whole answer (announced at the end).
  return el(
    "article",
    {
      class: streaming ? "message assistant streaming" : "message assistant",
      "aria-busy": streaming ? "true" : null,
    },
    el("img", { class: "avatar", src: "static/icon.svg", alt: "" }),
    body,
  );
}

/** A reply the prompt router gave instead of the chat model (e.g. a picture request) says so. */
function routeNote(message) {
  const drawn = Array.isArray(message.images) && message.images.length > 0;
  const picture =
    (message.route && message.route.label === "image_generation") ||
    message.model === ROUTER_MODEL ||
    drawn; // a stored answer with pictures: the image generator drew them
  if (!picture) return null;
  const sure = message.route ? ` (${Math.round(message.route.confidence * 100)} % sure)` : "";
  return el("p", { class: "route-note" }, `Picture request, recognised by the router${sure}`);
}

/** The numbered sources an answer cites: knowledge-base entries and linked pages. */
function sourceList(sources) {
  const items = sources.map((s) => {
    const label = `[${s.index}] ${s.title}`;
    const where = /^https?:\/\//.test(s.source)
      ? el("a", { href: s.source, target: "_blank", rel: "noopener noreferrer" }, s.source)
      : s.source;
    return el("li", {}, label, " — ", where);
  });
  return el("ol", { class: "sources", "aria-label": "Sources" }, ...items);
}

function errorNode({ error, retry: again }) {
  const actions = el(
    "div",
    { class: "error-actions" },
    el("button", { type: "button", class: "text-button", onclick: again }, icon("retry"), "Retry"),
  );
  if (error.status === 401) {
    actions.append(
      el(
        "button",
        { type: "button", class: "text-button", onclick: () => openSettings(ui.apiKey) },
        "Enter API key",
      ),
    );
  }
  const [summary, detail] = describeError(error);
  return el(
    "article",
    { class: "message error", role: "alert" },
    icon("alert"),
    el(
      "div",
      {},
      el("p", {}, summary),
      detail ? el("p", { class: "error-detail" }, detail) : null,
      actions,
    ),
  );
}

/** [what happened, in the user's words; the server's own message, when it adds something] */
function describeError(error) {
  if (error.status === 401) {
    return [
      "This server needs an API key, or the one given is wrong. Enter it in Settings, then retry.",
      error.message,
    ];
  }
  if (error.status === 503) {
    const wait = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : "";
    return [`The server is busy with other answers.${wait}`, error.message];
  }
  if (error.kind === "network") {
    return [
      "Could not reach the server. Check that it is running and that you are online, then retry.",
      null,
    ];
  }
  if (error.kind === "cut")
    return [`${error.message} What arrived is kept; retry for a full answer.`, null];
  return ["Something went wrong.", error.message];
}

function copyButton(getText, label) {
  const button = iconButton("copy", label, async () => {
    const copied = await copyText(getText());
    announce(copied ? "Copied." : "Could not copy.");
    if (!copied) return;
    button.replaceChildren(icon("check"));
    setTimeout(() => button.replaceChildren(icon("copy")), 1500);
  });
  return button;
}

// While streaming, only the answer being written is re-rendered, at most once a frame.
let liveFrame = 0;
function scheduleLiveRender() {
  if (!liveFrame) liveFrame = requestAnimationFrame(renderLive);
}

function renderLive() {
  liveFrame = 0;
  const target = ui.thread.querySelector(".message.streaming .markdown");
  if (!target || !state.live) return;
  const follow = nearBottom();
  renderMarkdown(target, state.live.content);
  if (follow) scrollToBottom();
}

function nearBottom() {
  const box = ui.messages;
  return box.scrollHeight - box.scrollTop - box.clientHeight < 120;
}

function scrollToBottom() {
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

function renderTitle() {
  if (jobsView.isOpen) return; // the view has its own title; a late chat update must not win
  const conversation = state.conversations.find((c) => c.id === state.current);
  const title = state.current ? (conversation && conversation.title) || "New chat" : "New chat";
  ui.title.textContent = title;
  document.title = `${title} · omnicoach`;
}

// ---------------------------------------------------------------- sidebar

function setSidebar(open) {
  ui.app.classList.toggle("sidebar-open", open);
  ui.toggleSidebar.setAttribute("aria-expanded", String(open));
  ui.toggleSidebar.setAttribute("aria-label", open ? "Close sidebar" : "Open sidebar");
  ui.backdrop.hidden = !(open && narrow.matches);
}

function sidebarOpen() {
  return ui.app.classList.contains("sidebar-open");
}

function renderSidebar() {
  ui.list.replaceChildren(...state.conversations.map(conversationItem));
  ui.historyEmpty.hidden = state.conversations.length > 0;
}

function conversationItem(conversation) {
  const title = conversation.title || "New chat";
  const current = conversation.id === state.current;
  const link = el(
    "a",
    {
      class: conversation.title ? "conversation-link" : "conversation-link untitled",
      href: `#${encodeURIComponent(conversation.id)}`,
      "aria-current": current ? "page" : null,
      onclick: (event) => {
        if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return; // new tab
        event.preventDefault();
        if (current && narrow.matches) setSidebar(false);
        else if (!current) navigate(conversation.id);
      },
    },
    title,
  );
  const item = el("li", { class: current ? "conversation current" : "conversation" }, link);
  item.dataset.id = conversation.id;
  item.append(
    iconButton(
      "rename",
      `Rename chat “${title}”`,
      () => startRename(conversation, item),
      "icon-button small",
    ),
    iconButton(
      "delete",
      `Delete chat “${title}”`,
      () => deleteConversation(conversation),
      "icon-button small",
    ),
  );
  return item;
}

function startRename(conversation, item) {
  const input = el("input", {
    class: "conversation-rename",
    "aria-label": "Chat title",
    maxlength: "200",
  });
  input.value = conversation.title;
  let finished = false;
  const finish = async (save) => {
    if (finished) return;
    finished = true;
    const title = input.value.trim();
    if (save && title && title !== conversation.title) {
      try {
        Object.assign(
          conversation,
          await api("PATCH", `conversations/${encodeURIComponent(conversation.id)}`, { title }),
        );
        announce("Chat renamed.");
      } catch (error) {
        showNotice(`Could not rename the chat: ${error.message}`);
      }
    }
    renderSidebar();
    renderTitle();
    const link = ui.list.querySelector(
      `li[data-id="${CSS.escape(conversation.id)}"] .conversation-link`,
    );
    if (link) link.focus();
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation(); // Escape must not also close the sidebar
      finish(event.key === "Enter");
    }
  });
  input.addEventListener("blur", () => finish(true));
  item.replaceChildren(input);
  input.focus();
  input.select();
}

async function deleteConversation(conversation) {
  const title = conversation.title || "New chat";
  if (!(await confirmDialog(`This deletes “${title}” and all its messages.`))) return;
  if (state.stream && state.stream.cid === conversation.id) stopAnswer();
  try {
    await api("DELETE", `conversations/${encodeURIComponent(conversation.id)}`);
  } catch (error) {
    showNotice(`Could not delete the chat: ${error.message}`);
    return;
  }
  state.conversations = state.conversations.filter((c) => c.id !== conversation.id);
  announce("Chat deleted.");
  if (state.current === conversation.id) navigate(null);
  else renderSidebar();
  ui.newChat.focus();
}

function confirmDialog(text) {
  ui.confirmText.textContent = text;
  ui.confirmDialog.returnValue = "";
  ui.confirmDialog.showModal();
  return new Promise((resolve) => {
    ui.confirmDialog.addEventListener(
      "close",
      () => resolve(ui.confirmDialog.returnValue === "ok"),
      { once: true },
    );
  });
}

// ---------------------------------------------------------------- settings

async function openSettings(focusTarget) {
  if (!state.models.length) await loadModels().catch(() => {});
  const models = state.models.map((model) => el("option", { value: model.id }, model.id));
  if (!models.length) models.push(el("option", { value: "" }, "(could not load the models)"));
  ui.model.replaceChildren(...models);
  ui.model.value = currentModel();
  const settings = state.settings;
  ui.temperature.value = settings.temperature ?? "";
  ui.maxTokens.value = settings.maxTokens ?? "";
  ui.system.value = settings.systemPrompt;
  ui.theme.value = settings.theme;
  ui.apiKey.value = settings.apiKey;
  ui.settingsDialog.showModal();
  if (focusTarget) focusTarget.focus();
}

/** A number from an input, clamped to [min, max]; null when empty or not a number. */
function numberFrom(input, min, max, integer = false) {
  if (input.value.trim() === "") return null;
  let value = Number(input.value);
  if (!Number.isFinite(value)) return null;
  if (integer) value = Math.round(value);
  return Math.min(max, Math.max(min, value));
}

function saveSettingsForm() {
  const keyChanged = ui.apiKey.value.trim() !== state.settings.apiKey;
  state.settings = {
    ...state.settings, // what the dialog does not show (speakReplies)
    model: ui.model.value,
    temperature: numberFrom(ui.temperature, 0, 2),
    maxTokens: numberFrom(ui.maxTokens, 1, 1_000_000, true),
    systemPrompt: ui.system.value,
    theme: ui.theme.value,
    apiKey: ui.apiKey.value.trim(),
  };
  saveSettings(state.settings);
  applyTheme(state.settings.theme);
  setApiKey(state.settings.apiKey);
  renderModelName();
  ui.settingsDialog.close();
  announce("Settings saved.");
  // Another key may be another user: reload what the page lists. A failed turn keeps its
  // error and Retry button, so the user can try again with the new key.
  if (keyChanged) loadEverything();
}

// ---------------------------------------------------------------- small things

function showNotice(text, actionLabel = null, action = null) {
  ui.noticeText.textContent = text;
  ui.noticeAction.hidden = !actionLabel;
  ui.noticeAction.textContent = actionLabel || "";
  ui.noticeAction.onclick = action;
  ui.notice.hidden = false;
}

function hideNotice() {
  ui.notice.hidden = true;
}

function announce(text) {
  // Cleared first, so the same words twice in a row are read twice.
  ui.announcer.textContent = "";
  setTimeout(() => {
    ui.announcer.textContent = text;
  }, 50);
}

function autosize() {
  // Grow with the text up to the CSS max-height, then scroll inside.
  ui.input.style.height = "auto";
  ui.input.style.height = `${ui.input.scrollHeight}px`;
}

function updateComposer() {
  const streaming = Boolean(state.stream);
  const focused = document.activeElement;
  ui.send.hidden = streaming || Boolean(state.voice);
  ui.stop.hidden = !streaming;
  ui.send.disabled = Boolean(state.preparing) || !(ui.input.value.trim() || state.attachment);
  // One question at a time: a voice message waits until the answer has ended.
  ui.microphone.disabled = streaming;
  ui.audioUpload.disabled = streaming;
  // Keep keyboard focus on whichever of the two buttons is showing.
  if (streaming && focused === ui.send) ui.stop.focus();
  if (!streaming && focused === ui.stop) ui.input.focus();
}

function bindEvents() {
  // Handled here: following its #fragment would look like a conversation id in the address.
  document.querySelector(".skip-link").addEventListener("click", (event) => {
    event.preventDefault();
    ui.input.focus();
  });
  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    send(ui.input.value);
  });
  ui.input.addEventListener("keydown", (event) => {
    // Enter sends, Shift+Enter is a new line; never while an IME is composing a character.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send(ui.input.value);
    }
  });
  ui.input.addEventListener("input", () => {
    autosize();
    updateComposer();
  });
  ui.stop.addEventListener("click", stopAnswer);
  ui.microphone.addEventListener("click", startRecording);
  ui.recordingSend.addEventListener("click", finishRecording);
  ui.recordingCancel.addEventListener("click", cancelVoice);
  ui.audioUpload.addEventListener("click", () => {
    if (state.settings.speakReplies) unlockAudio(); // the reply is spoken after this click
    ui.audioFile.click();
  });
  ui.audioFile.addEventListener("change", () => {
    const file = ui.audioFile.files[0];
    ui.audioFile.value = ""; // choosing the same file again is a new upload
    if (file && !state.voice && !state.stream) transcribeAndSend(file, file.name);
  });
  ui.speakToggle.addEventListener("click", () => setSpeakReplies(!state.settings.speakReplies));
  ui.attach.addEventListener("click", () => ui.imageFile.click());
  ui.imageFile.addEventListener("change", () => {
    const files = [...ui.imageFile.files];
    ui.imageFile.value = ""; // choosing the same file again attaches it again
    if (files.length) attachFiles(files);
    ui.input.focus();
  });
  document.addEventListener("paste", pasteImages);
  bindDragAndDrop();
  ui.composerNoteClose.addEventListener("click", () => {
    hideComposerNote();
    ui.input.focus();
  });
  // A click outside the image (on the backdrop) closes the viewer too.
  ui.imageViewer.addEventListener("click", (event) => {
    if (event.target === ui.imageViewer) ui.imageViewer.close();
  });
  for (const button of document.querySelectorAll(".suggestion")) {
    button.addEventListener("click", () => send(button.textContent));
  }
  // Code blocks are re-rendered while streaming, so their copy buttons are handled here.
  ui.thread.addEventListener("click", async (event) => {
    const button = event.target.closest(".code-copy");
    if (!button) return;
    const copied = await copyText(button.closest(".code-block").querySelector("pre").textContent);
    announce(copied ? "Code copied." : "Could not copy.");
    if (copied && button.isConnected) {
      button.replaceChildren(icon("check"), document.createTextNode("Copied"));
      setTimeout(() => button.replaceChildren(icon("copy"), document.createTextNode("Copy")), 1500);
    }
  });

  ui.newChat.addEventListener("click", () => {
    navigate(null);
    ui.input.focus();
  });
  ui.newChatTop.addEventListener("click", () => {
    navigate(null);
    ui.input.focus();
  });
  ui.toggleSidebar.addEventListener("click", () => {
    setSidebar(!sidebarOpen());
    if (sidebarOpen() && narrow.matches) ui.closeSidebar.focus();
  });
  ui.closeSidebar.addEventListener("click", () => {
    setSidebar(false);
    ui.toggleSidebar.focus();
  });
  ui.backdrop.addEventListener("click", () => setSidebar(false));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.voice && !document.querySelector("dialog[open]")) {
      event.preventDefault();
      cancelVoice();
      return;
    }
    if (
      event.key === "Escape" &&
      narrow.matches &&
      sidebarOpen() &&
      !document.querySelector("dialog[open]")
    ) {
      setSidebar(false);
      ui.toggleSidebar.focus();
    }
  });
  narrow.addEventListener("change", () => setSidebar(!narrow.matches));
  window.addEventListener("popstate", route);
  ui.openJobs.addEventListener("click", (event) => {
    if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return; // new tab
    event.preventDefault();
    if (window.location.hash !== "#jobs") window.history.pushState(null, "", "#jobs");
    if (narrow.matches) setSidebar(false);
    route();
    jobsView.focus();
  });

  $("open-settings").addEventListener("click", () => openSettings());
  $("open-settings-side").addEventListener("click", () => openSettings());
  ui.settingsForm.addEventListener("submit", (event) => {
    event.preventDefault();
    saveSettingsForm();
  });
  ui.settingsCancel.addEventListener("click", () => ui.settingsDialog.close());
  ui.confirmForm.addEventListener("submit", (event) => {
    event.preventDefault();
    ui.confirmDialog.close("ok");
  });
  ui.confirmCancel.addEventListener("click", () => ui.confirmDialog.close("cancel"));
  ui.noticeClose.addEventListener("click", hideNotice);
}

init();

// The user's settings live in this browser's localStorage: there is no account to keep them in,
// and the API key must never be stored on a page the server renders.

const SETTINGS_KEY = "omnicoach.settings";
const API_KEY_KEY = "omnicoach.apiKey";

const DEFAULTS = {
  model: "", // "" = the server's default chat model (the one loaded at start)
  temperature: null, // null = the server's default
  maxTokens: null, // null = the server's default
  systemPrompt: "", // "" = the server's default coach prompt
  theme: "system", // "system" | "light" | "dark"
  speakReplies: false, // read answers aloud as they stream (the top bar's speaker button)
};

function read(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null; // storage disabled (some private modes): settings last for this visit only
  }
}

function write(key, value) {
  try {
    if (value) localStorage.setItem(key, value);
    else localStorage.removeItem(key);
  } catch {
    // See read(): nothing to do but keep them in memory.
  }
}

export function loadSettings() {
  let stored = {};
  try {
    stored = JSON.parse(read(SETTINGS_KEY) || "{}") || {};
  } catch {
    stored = {}; // unreadable: start from the defaults
  }
  const settings = { ...DEFAULTS };
  for (const name of Object.keys(DEFAULTS)) {
    if (name in stored) settings[name] = stored[name];
  }
  settings.apiKey = read(API_KEY_KEY) || "";
  return settings;
}

export function saveSettings(settings) {
  const { apiKey, ...rest } = settings;
  write(SETTINGS_KEY, JSON.stringify(rest));
  write(API_KEY_KEY, apiKey);
}

export function applyTheme(theme) {
  if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
}

// What the appeals and calibration pages share: a key kept for the tab, the API called with it, elements built
// with text (never HTML), a status line, and the login form that stores the key and (re)starts the page.
"use strict";

const $ = (id) => document.getElementById(id);
let key = sessionStorage.getItem("callqa.key") || "";
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
};

async function api(method, path, body) {
  const response = await fetch(path, { method, headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { error: text }; }
  return { status: response.status, ok: response.ok, data };
}

function say(text, kind = "") { $("status").textContent = text; $("status").className = kind; }

// The login form stores the key for this tab and starts the page again with it.
function onLogin(start) {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    key = $("key").value.trim();
    sessionStorage.setItem("callqa.key", key);
    start();
  });
}

// The twin's web page: chat, give-me-N-and-pick, and the blind "which one is real?" game.
// Plain JavaScript against the same server's API; no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const chatHistory = [];

function headers() {
  // the owner's own page: memory may recall every conversation (docs/memory.md)
  const h = { "Content-Type": "application/json", "X-Selftune-Owner": "1" };
  const key = localStorage.getItem("selftune-key");
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

async function api(path, body) {
  const init = body === undefined ? { headers: headers() }
    : { method: "POST", headers: headers(), body: JSON.stringify(body) };
  let r = await fetch(path, init);
  if (r.status === 401) {
    const key = prompt("This twin needs its API key:");
    if (key) { localStorage.setItem("selftune-key", key); return api(path, body); }
  }
  const data = await r.json();
  if (!r.ok) throw new Error((data.error && data.error.message) || r.statusText);
  return data;
}

function model() { return $("model").value || "twin"; }

// -- tabs ---------------------------------------------------------------------------------------
function show(view) {
  document.querySelectorAll("nav button").forEach((b) =>
    b.setAttribute("aria-selected", String(b.dataset.view === view)));
  document.querySelectorAll(".view").forEach((s) => { s.hidden = s.id !== "view-" + view; });
  if (view === "blind") loadBlind();
  if (view === "review" && window.loadReview) window.loadReview();
  history.replaceState(null, "", "#" + view);
}
document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => show(b.dataset.view)));

// -- chat (streamed) ----------------------------------------------------------------------------
function bubble(role, text) {
  const li = document.createElement("li");
  li.className = role;
  li.textContent = text;
  $("chat-log").appendChild(li);
  li.scrollIntoView({ block: "end" });
  return li;
}

$("chat-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = $("chat-input").value.trim();
  if (!text) return;
  $("chat-input").value = "";
  chatHistory.push({ role: "user", content: text });
  bubble("user", text);
  const li = bubble("assistant", "…");
  $("chat-send").disabled = true;
  try {
    const r = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers(),
      body: JSON.stringify({ model: model(), messages: chatHistory, stream: true, max_tokens: 160 }),
    });
    if (!r.ok) throw new Error((await r.json()).error.message);
    let reply = "", buffer = "";
    const reader = r.body.getReader(), decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      const events = buffer.split("\n\n");
      buffer = events.pop();
      for (const ev of events) {
        if (!ev.startsWith("data: ")) continue;  // keep-alive comments (": ping")
        const data = ev.slice(6);
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        for (const c of chunk.choices || []) reply += (c.delta && c.delta.content) || "";
        li.textContent = reply || "…";
      }
    }
    chatHistory.push({ role: "assistant", content: reply });
  } catch (err) {
    li.textContent = "⚠ " + err.message;
    li.classList.add("error");
  } finally {
    $("chat-send").disabled = false;
  }
});
$("chat-clear").addEventListener("click", () => { chatHistory.length = 0; $("chat-log").innerHTML = ""; });

// -- give me N: candidates side by side, pick, edit, keep, rate ---------------------------------
function card(sampleId, i, text) {
  const div = document.createElement("div");
  div.className = "card";
  div.dataset.index = i;
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("aria-label", "Candidate " + (i + 1));
  const actions = document.createElement("div");
  actions.className = "actions";
  const rateBtn = (label, value, title) => {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = label; b.title = title; b.className = "rate";
    b.addEventListener("click", async () => {
      if (sampleId === null) return;
      await api(`/api/samples/${sampleId}/rate`, { candidate: i, rating: value });
      actions.querySelectorAll(".rate").forEach((x) => x.classList.remove("on"));
      b.classList.add("on");
    });
    return b;
  };
  actions.append(rateBtn("+1", 1, "Sounds like me"), rateBtn("−1", -1, "Not me"));
  const keep = document.createElement("button");
  keep.type = "button"; keep.className = "keep"; keep.textContent = "Keep";
  keep.addEventListener("click", async () => {
    const edited = area.value !== text ? area.value : null;
    if (sampleId !== null) await api(`/api/samples/${sampleId}/pick`, { candidate: i, edited });
    document.querySelectorAll("#candidates .card").forEach((c) => c.classList.remove("kept"));
    div.classList.add("kept");
    if (navigator.clipboard) navigator.clipboard.writeText(area.value).catch(() => {});
    $("pick-status").textContent = `Kept candidate ${i + 1}` + (edited ? " (edited)" : "") + ".";
  });
  actions.append(keep);
  div.append(area, actions);
  return div;
}

$("pick-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const body = {
    model: model(), prompt: $("pick-prompt").value, n: Number($("pick-n").value),
    temperature: Number($("pick-temp").value), max_tokens: Number($("pick-max").value),
    chat: $("pick-chat").checked,
  };
  $("pick-go").disabled = true;
  $("pick-status").textContent = `Writing ${body.n}…`;
  $("candidates").innerHTML = "";
  try {
    const out = await api("/generate", body);
    out.candidates.forEach((t, i) => $("candidates").appendChild(card(out.id, i, t)));
    $("pick-status").textContent = `${out.candidates.length} candidates in ${out.seconds.toFixed(1)} s` +
      (out.flags.length ? ` (flagged: ${out.flags.join(", ")})` : "") + ". Edit one and keep it.";
  } catch (err) {
    $("pick-status").textContent = "⚠ " + err.message;
  } finally {
    $("pick-go").disabled = false;
  }
});

// -- blind game ---------------------------------------------------------------------------------
let blind = null;

async function loadBlind() {
  $("blind-result").textContent = "";
  const pair = await api("/api/blind");
  if (!pair.available) {
    $("blind-game").hidden = true;
    $("blind-empty").hidden = false;
    $("blind-empty").textContent = pair.message;
    return;
  }
  blind = pair;
  $("blind-game").hidden = false;
  $("blind-empty").hidden = true;
  $("blind-context").innerHTML = "";
  for (const turn of pair.context) {
    const li = document.createElement("li");
    li.textContent = typeof turn === "string" ? turn
      : `${turn.author || turn.role || ""}: ${turn.text || turn.content || ""}`;
    $("blind-context").appendChild(li);
  }
  $("blind-options").innerHTML = "";
  pair.options.forEach((text, i) => {
    const b = document.createElement("button");
    b.type = "button"; b.className = "card option"; b.textContent = text;
    b.addEventListener("click", () => answer(i, b));
    $("blind-options").appendChild(b);
  });
}

async function answer(choice, button) {
  if (!blind) return;
  const out = await api("/api/blind/answer",
    { report: blind.report, pair: blind.pair, choice, options: blind.options });
  button.classList.add(out.correct ? "right" : "wrong");
  $("blind-result").textContent = out.correct ? "Right — that one is real." : "No — the other one is real.";
  $("blind-score").textContent = `Score: ${out.score.correct} of ${out.score.answered}`;
  blind = null;
}
$("blind-next").addEventListener("click", loadBlind);

// -- start --------------------------------------------------------------------------------------
(async () => {
  try {
    const info = await api("/api/info");
    $("owner").textContent = info.owner + "'s";
    for (const m of info.models) $("model").add(new Option(m, m));
    $("pick-n").max = info.max_n;
  } catch (err) { $("owner").textContent = "Your"; }
  const view = location.hash.slice(1);
  show(["chat", "pick", "blind", "review"].includes(view) ? view : "chat");
})();

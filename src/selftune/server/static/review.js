// The Review tab: what waits for review (amplified samples, and any sample of several
// candidates not picked or rated yet), one at a time. Keep a candidate (edited or not), rate
// it, reject them all, or skip. Keys 1-9 keep, r rejects all, s skips (outside a text box).
"use strict";

const review = { queue: [], current: null, skipped: new Set() };

function reviewCounts(c) {
  $("review-counts").textContent = `${c.waiting} waiting · ${c.picked} picked` +
    (c.edited ? ` (${c.edited} edited)` : "") + ` · ${c.rated} rated · ${c.ratings} ratings`;
}

async function loadReview() {
  const out = await api("/api/review?limit=50");
  reviewCounts(out.counts);
  review.queue = out.waiting.filter((s) => !review.skipped.has(s.id));
  showNext();
}
window.loadReview = loadReview;

function showNext() {
  review.current = review.queue.shift() || null;
  const sample = review.current;
  $("review-sample").hidden = !sample;
  $("review-empty").hidden = !!sample;
  if (!sample) {
    $("review-empty").textContent = "Nothing waits for review. Make some with `selftune amplify`, " +
      "or ask for several candidates in Give me N; then `selftune distill`.";
    return;
  }
  $("review-status").textContent = "";
  $("review-context").innerHTML = "";
  const lines = sample.kind === "chat" ? sample.context.map((t) => `${t.who}: ${t.text}`) : [sample.text];
  for (const line of lines) {
    const li = document.createElement("li");
    li.textContent = line;
    $("review-context").appendChild(li);
  }
  $("review-candidates").innerHTML = "";
  sample.candidates.forEach((text, i) => $("review-candidates").appendChild(reviewCard(sample, i, text)));
}

function reviewCard(sample, i, text) {
  const div = document.createElement("div");
  div.className = "card";
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("aria-label", "Candidate " + (i + 1));
  const actions = document.createElement("div");
  actions.className = "actions";
  const thumb = (label, value, title) => {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = label; b.title = title; b.className = "rate";
    b.addEventListener("click", async () => {
      const out = await api(`/api/review/${sample.id}/rate`, { candidate: i, rating: value });
      actions.querySelectorAll(".rate").forEach((x) => x.classList.remove("on"));
      b.classList.add("on");
      reviewCounts(out.counts);
    });
    return b;
  };
  const keep = document.createElement("button");
  keep.type = "button"; keep.className = "keep"; keep.textContent = `Keep (${i + 1})`;
  keep.addEventListener("click", () => keepCandidate(sample, i, area.value !== text ? area.value : null));
  actions.append(thumb("+1", 1, "Sounds like me"), thumb("−1", -1, "Not me"), keep);
  div.append(area, actions);
  return div;
}

async function keepCandidate(sample, i, edited) {
  try {
    const out = await api(`/api/review/${sample.id}/pick`, { candidate: i, edited });
    reviewCounts(out.counts);
    if (navigator.clipboard) navigator.clipboard.writeText(out.kept).catch(() => {});
    showNext();
    $("review-status").textContent = `Kept candidate ${i + 1} of sample ${sample.id}` +
      (edited ? " (edited)" : "") + ": " + out.kept;
  } catch (err) { $("review-status").textContent = "⚠ " + err.message; }
}

async function rejectAll() {
  const sample = review.current;
  if (!sample) return;
  const out = await api(`/api/review/${sample.id}/reject`, {});
  reviewCounts(out.counts);
  showNext();
  $("review-status").textContent = `Rejected every candidate of sample ${sample.id}.`;
}

function skip() {
  if (!review.current) return;
  review.skipped.add(review.current.id);
  showNext();
}

$("review-reject").addEventListener("click", rejectAll);
$("review-skip").addEventListener("click", skip);
document.addEventListener("keydown", (e) => {
  if ($("view-review").hidden || !review.current || e.target.tagName === "TEXTAREA") return;
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const n = Number(e.key);
  if (n >= 1 && n <= review.current.candidates.length) keepCandidate(review.current, n - 1, null);
  else if (e.key === "r") rejectAll();
  else if (e.key === "s") skip();
});

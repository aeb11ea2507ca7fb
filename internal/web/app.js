// Handoff's pages: the form on / and a task's live view on /tasks/{id}.
// The view follows GET /v1/tasks/{id}/events with the page's read token.
"use strict";

const terminal = new Set(["completed", "discarded", "cancelled"]);
const $ = (id) => document.getElementById(id);

function render(task) {
  const section = $("task");
  section.hidden = false;
  section.dataset.state = task.state;
  $("task-id").textContent = "#" + task.id;
  $("kind").textContent = task.kind;
  if ($("state").textContent !== task.state) {
    $("state").textContent = task.state;
  }
  $("attempt").textContent = task.attempt + " of " + task.max_attempts;
  const p = task.progress;
  if (p && p.total > 0) {
    const pct = Math.min(100, Math.round((p.done / p.total) * 1000) / 10);
    $("bar").value = pct;
    $("percent").textContent = pct + "%";
  }
  $("message").textContent = p && p.message ? p.message : "";
  const list = $("errors");
  list.replaceChildren();
  for (const e of task.errors) {
    const li = document.createElement("li");
    li.textContent = "attempt " + e.attempt + ": " + e.error;
    list.append(li);
  }
  if (task.errors.length === 0) {
    const li = document.createElement("li");
    li.className = "none";
    li.textContent = "none";
    list.append(li);
  }
  $("result").textContent = task.result === null ? "—" : JSON.stringify(task.result, null, 2);
}

function follow(eventsURL) {
  const source = new EventSource(eventsURL);
  source.onmessage = (e) => {
    const task = JSON.parse(e.data);
    render(task);
    $("link-status").textContent = "";
    // The server ends the stream after a terminal state; EventSource
    // would reconnect, so close it here.
    if (terminal.has(task.state)) source.close();
  };
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      $("link-status").textContent = "The live link was refused (has this page's link expired?). Reload to try again.";
    } else {
      $("link-status").textContent = "Reconnecting…";
    }
  };
}

function showTaskPage() {
  const m = location.pathname.match(/^\/tasks\/(\d+)$/);
  if (!m) return false;
  $("new").hidden = true;
  const token = new URLSearchParams(location.search).get("token");
  follow("/v1/tasks/" + m[1] + "/events" + (token ? "?token=" + encodeURIComponent(token) : ""));
  return true;
}

function setUpForm() {
  const form = $("new-form");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const button = $("submit");
    button.disabled = true;
    $("form-status").textContent = "Submitting…";
    try {
      const res = await fetch("/tasks", {
        method: "POST",
        headers: { Accept: "application/json" },
        body: new URLSearchParams(new FormData(form)),
      });
      const body = await res.json();
      if (!res.ok) {
        $("form-status").textContent = body.detail || "The task was refused.";
        return;
      }
      $("form-status").textContent = "Task #" + body.task.id + " accepted.";
      render(body.task);
      $("new").hidden = true;
      $("state").focus();
      history.pushState(null, "", body.page);
      follow(body.events);
    } catch (err) {
      $("form-status").textContent = "Could not reach the server: " + err.message;
    } finally {
      button.disabled = false;
    }
  });
}

if (!showTaskPage()) setUpForm();
window.addEventListener("popstate", () => location.reload());

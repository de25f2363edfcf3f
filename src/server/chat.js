"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf"]').content;
  const channel = document.body.dataset.channel;
  const list = document.getElementById("messages");
  const dialog = document.getElementById("dialog");
  const statusLine = document.getElementById("status");
  const nonce = () => Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0")).join("");
  const say = (text) => { statusLine.textContent = text || ""; };

  async function post(path, body) {
    const r = await fetch(path, {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    let data = null;
    try { data = await r.json(); } catch (_) { data = null; }
    return { status: r.status, data };
  }

  function refused(res) {
    if (res.status >= 400) {
      say((res.data && res.data.error) || ("HTTP " + res.status));
      return true;
    }
    say("");
    return false;
  }

  async function refresh() {
    const r = await fetch("/chat/messages?c=" + encodeURIComponent(channel), { credentials: "same-origin" });
    if (!r.ok) return;
    const atEnd = list.scrollTop + list.clientHeight >= list.scrollHeight - 40;
    list.innerHTML = await r.text();
    if (atEnd) list.scrollTop = list.scrollHeight;
  }

  async function openForm() {
    const r = await fetch("/chat/form", { credentials: "same-origin" });
    if (r.status !== 200) return;
    dialog.innerHTML = await r.text();
    if (!dialog.open) dialog.showModal();
  }

  function closeForm() {
    if (dialog.open) dialog.close();
    dialog.innerHTML = "";
  }

  function ask(b) {
    const box = document.getElementById("confirm");
    document.getElementById("confirm-title").textContent = b.dataset.confirmTitle || "";
    document.getElementById("confirm-text").textContent = b.dataset.confirmText || "";
    document.getElementById("confirm-ok").textContent = b.dataset.confirmOk || "OK";
    document.getElementById("confirm-cancel").textContent = b.dataset.confirmCancel || "Cancel";
    return new Promise((resolve) => {
      box.addEventListener("close", () => resolve(box.returnValue === "ok"), { once: true });
      box.showModal();
    });
  }

  document.addEventListener("click", async (e) => {
    const b = e.target.closest("button[data-action]");
    if (!b || b.disabled) return;
    if (b.dataset.confirmTitle && !(await ask(b))) return;
    b.disabled = true;
    const res = await post("/chat/action", {
      message: Number(b.dataset.message),
      version: Number(b.dataset.version),
      action: b.dataset.action,
    });
    if (refused(res)) b.disabled = false;
  });

  dialog.addEventListener("click", async (e) => {
    if (!e.target.closest("[data-dismiss]")) return;
    const form = dialog.querySelector("form[data-form]");
    if (form) await post("/chat/form/dismiss", { id: form.dataset.form });
    closeForm();
  });

  dialog.addEventListener("cancel", async () => {
    const form = dialog.querySelector("form[data-form]");
    if (form) await post("/chat/form/dismiss", { id: form.dataset.form });
  });

  dialog.addEventListener("submit", async (e) => {
    const form = e.target.closest("form[data-form]");
    if (!form) return;
    e.preventDefault();
    const values = {};
    for (const el of form.elements) {
      if (el.name) values[el.name] = el.value;
    }
    const res = await post("/chat/form", { id: form.dataset.form, values });
    form.querySelectorAll(".field").forEach((f) => f.classList.remove("invalid"));
    form.querySelectorAll(".error").forEach((x) => { x.textContent = ""; });
    if (res.status === 200 && res.data && res.data.errors) {
      for (const [field, message] of Object.entries(res.data.errors)) {
        const el = document.getElementById("e-" + field);
        if (el) {
          el.textContent = message;
          el.parentElement.classList.add("invalid");
        } else {
          say(message);
        }
      }
      return;
    }
    if (!refused(res)) closeForm();
  });

  document.getElementById("composer").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = document.getElementById("line");
    const text = input.value.trim();
    if (!text) return;
    const res = await post("/chat/command", { channel, text, nonce: nonce() });
    if (!refused(res)) input.value = "";
  });

  document.getElementById("as").addEventListener("change", async (e) => {
    const res = await post("/chat/as", { user: e.target.value });
    if (!refused(res)) location.reload();
  });

  const events = new EventSource("/chat/events");
  events.addEventListener("channel", (e) => {
    if (e.data === channel) {
      refresh();
    } else {
      const link = document.querySelector('nav a[data-channel="' + CSS.escape(e.data) + '"]');
      if (link) link.classList.add("unread");
      else if (!e.data.startsWith("@")) location.reload();
    }
  });
  events.addEventListener("form", openForm);
  events.addEventListener("lagged", refresh);
  events.addEventListener("open", () => { refresh(); openForm(); });
  list.scrollTop = list.scrollHeight;
})();

// The didmpc lobby page. It renders the state didmpc sends (GET /api/events) and sends the
// user's commands (POST /api/...), always with the page's token as a header. Text from the
// session (DIDs, names, reasons) is only ever set as text, never as markup.
"use strict";
(() => {
  const match = location.pathname.match(/^\/t\/([^/]+)\//);
  const token = match ? match[1] : "";
  const $ = (id) => document.getElementById(id);
  const OVER = ["done", "failed", "declined", "kept"];
  let view = null;
  let busy = false;
  let local = null; // a notice from this page (the wallet's answers), shown over didmpc's
  let serverNotice = "";
  let logShown = 0;
  let qrShown = false;
  let focusJoin = false;

  async function api(path, body) {
    const init = { method: body === undefined ? "GET" : "POST", headers: { "x-didmpc-token": token }, cache: "no-store" };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const r = await fetch("/api/" + path, init);
    let data = null;
    try { data = await r.json(); } catch (_) { data = null; }
    if (!r.ok) {
      const e = new Error((data && data.error) || ("didmpc answered " + r.status));
      e.server = (data && data.code) || String(r.status);
      throw e;
    }
    return data;
  }

  // Server-sent events, read through fetch so that the token travels as a header.
  async function follow() {
    try {
      const r = await fetch("/api/events", { headers: { "x-didmpc-token": token, accept: "text/event-stream" }, cache: "no-store" });
      if (!r.ok || !r.body) throw new Error("didmpc answered " + r.status);
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, "")).join("\n");
          if (data) render(JSON.parse(data));
        }
      }
    } catch (_) { /* reported below */ }
    const over = view && OVER.includes(view.phase);
    setText("status", over ? phaseText(view) + " You can close this page." : "Lost contact with didmpc. Is it still running?");
    busy = true;
    buttons();
  }

  function setText(id, text) { $(id).textContent = text; }
  function show(id, on) { $(id).hidden = !on; }
  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }

  function phaseText(v) {
    const host = v.role === "host";
    switch (v.phase) {
      case "loading": return host ? "Publishing the session…" : "Opening the invitation…";
      case "review": return v.role === "proof" ? "Sign in with your wallet to make your proof." : "Look at the session, then join or decline.";
      case "checking": return "Checking the program here and joining…";
      case "joined": return "You joined. Waiting for the host to start…";
      case "waiting": return "Waiting for the invitees to join…";
      case "ready": return "Everyone joined. Start the run when you are ready.";
      case "connecting": return "Everyone is in. Setting up the encrypted sessions…";
      case "running": return "The program is running…";
      case "finishing": return "Finished here. Waiting for the others to finish…";
      case "done": return "Finished.";
      case "failed": return "It did not work (see the result below).";
      case "declined": return "You did not join.";
      case "kept": return "Your proof is ready.";
      default: return v.phase;
    }
  }

  const STATES = { host: "host", invited: "invited", reached: "invitation delivered", unreachable: "joins by the link", joined: "joined", refused: "refused", up: "connected" };

  function fact(dl, name, value, mono) {
    dl.appendChild(el("dt", name));
    const dd = el("dd");
    if (mono) dd.appendChild(el("code", value)); else dd.textContent = value;
    dl.appendChild(dd);
  }

  function render(v) {
    view = v;
    const host = v.role === "host";
    setText("title", host ? "Host an MPC session" : v.role === "proof" ? "Prove your Ethereum account" : "Join an MPC session");
    setText("status", phaseText(v));

    // Notice: this page's own (from the wallet) until didmpc says something new.
    const sn = v.notice ? v.notice.level + ":" + v.notice.text : "";
    if (sn !== serverNotice) { serverNotice = sn; if (sn) local = null; }
    const n = local || v.notice;
    const notice = $("notice");
    notice.hidden = !n;
    if (n) { notice.textContent = n.text; notice.className = "notice " + n.level; }

    // The invitation (host).
    show("invite", !!v.invitation);
    if (v.invitation) {
      $("link").value = v.invitation.link;
      if (v.invitation.qr && !qrShown) { $("qr").src = "qr.svg"; qrShown = true; }
      show("qr", v.invitation.qr);
    }

    // The session as the host signed it.
    const s = v.session;
    show("session", !!s);
    if (s) {
      const dl = $("facts");
      dl.replaceChildren();
      fact(dl, "Host", s.host_short, true);
      fact(dl, "Program", s.program, true);
      fact(dl, "Arguments", s.args.length ? s.args.join(" ") : "(none)", s.args.length > 0);
      fact(dl, "SHA-256", s.sha256, true);
      fact(dl, "Parties", String(s.parties));
      fact(dl, "Threshold", s.threshold === 0
        ? "0: no secret sharing, the other parties can learn your input"
        : s.threshold + " (up to " + s.threshold + " colluding part" + (s.threshold === 1 ? "y learns" : "ies learn") + " nothing of your input)");
      fact(dl, "MPyC", s.mpyc + (s.ssl ? ", with TLS (--ssl)" : ""));
      fact(dl, "Session", s.id, true);
      fact(dl, "Joining closes", new Date(s.expires * 1000).toLocaleString());
      if (s.pid !== null && s.pid !== undefined) fact(dl, "You are", "pid " + s.pid);
    }

    // The roster.
    show("parties", v.roster.length > 0);
    const tbody = $("roster").tBodies[0];
    tbody.replaceChildren();
    for (const r of v.roster) {
      const tr = el("tr");
      tr.appendChild(el("td", String(r.pid)));
      const who = el("td");
      const did = el("span", r.short, "did");
      did.title = r.did;
      did.tabIndex = 0;
      did.setAttribute("aria-label", r.did);
      who.appendChild(did);
      if (r.you) who.appendChild(el("span", "you", "tag"));
      if (r.host) who.appendChild(el("span", "host", "tag"));
      if (r.agent) who.appendChild(el("small", "acting: " + r.agent));
      tr.appendChild(who);
      const st = el("td", STATES[r.state] || r.state, "state-" + r.state);
      if (r.detail) st.appendChild(el("small", r.detail));
      tr.appendChild(st);
      tr.appendChild(el("td", r.identity || "—"));
      tbody.appendChild(tr);
    }

    // The proof asked of us.
    const p = v.proof;
    const asks = !host && (p.text || p.note);
    show("proof", !!asks || (!host && !!s));
    setText("proof-text", p.text ? "This session asks for: " + p.text + "." : "This session asks for no identity proof.");
    const accounts = $("accounts");
    accounts.replaceChildren();
    for (const a of p.accounts) accounts.appendChild(el("li", a, "did"));
    show("accounts", p.accounts.length > 0);
    show("proof-note", !!p.note);
    setText("proof-note", p.note || "");
    show("signed-in", !!v.signed_in);
    setText("signed-in", v.signed_in ? "✓ Verified here as the host will: " + v.signed_in : "");
    show("sign", p.siwe && !v.signed_in && v.role !== "host" && v.phase === "review");

    // Join or decline (invitee).
    show("decide", v.role === "join" && !!s && v.phase === "review");
    if (s) {
      const pid = s.pid !== null && s.pid !== undefined ? "as pid " + s.pid + " " : "";
      let t = "Join " + pid + "and run " + s.program + " with " + s.parties + " parties?";
      if (v.phase === "review" && p.siwe && !v.signed_in) t += " Sign in with your wallet first.";
      setText("decide-text", t);
    }

    // Start or cancel (host).
    show("controls", host && !!s && ["loading", "waiting", "ready"].includes(v.phase));
    setText("controls-text", v.phase === "ready" ? "Everyone joined." : "Start becomes possible when everyone has joined.");

    // Result and output.
    show("result", !!v.outcome);
    if (v.outcome) { setText("outcome", v.outcome.text); $("outcome").className = v.outcome.level; }
    show("out", v.output.length > 0);
    const pre = $("output");
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.textContent = v.output.join("\n");
    if (atEnd) pre.scrollTop = pre.scrollHeight;

    // Progress: append only the new lines (so screen readers hear only those).
    const log = $("log");
    if (v.log.length < logShown || v.log.length - logShown > 400) { log.replaceChildren(); logShown = 0; }
    for (const line of v.log.slice(logShown)) log.appendChild(el("li", line.text, line.level));
    logShown = v.log.length;

    buttons();
    if (focusJoin && v.can.join) { focusJoin = false; $("join").focus(); }
  }

  function buttons() {
    const c = (view && view.can) || {};
    $("sign").disabled = busy || !c.sign;
    $("join").disabled = busy || !c.join;
    $("decline").disabled = busy || !c.decline;
    $("start").disabled = busy || !c.start;
    $("cancel").disabled = busy || !c.cancel;
    $("cancel-yes").disabled = busy || !c.cancel;
    if (!c.cancel) show("really", false);
  }

  function say(level, text) {
    local = { level, text };
    if (view) render(view);
  }

  async function run(f) {
    if (busy) return;
    busy = true;
    buttons();
    try { await f(); } catch (e) {
      if (!e.server || !["wrong-account", "not-invited", "subject-mismatch", "nonce-reused", "expired", "not-yet-valid", "bad-signature", "malformed"].includes(e.server)) say("error", e.message);
    } finally { busy = false; buttons(); }
  }

  function hex(text) {
    let out = "0x";
    for (const b of new TextEncoder().encode(text)) out += b.toString(16).padStart(2, "0");
    return out;
  }

  async function signIn() {
    const eth = window.ethereum;
    if (!eth || typeof eth.request !== "function") {
      say("error", "No Ethereum wallet was found in this browser. Install or unlock one (MetaMask, Rabby, Coinbase Wallet, …), reload this page, and try again.");
      return;
    }
    try {
      setText("status", "Asking your wallet which account to use…");
      const accounts = await eth.request({ method: "eth_requestAccounts" });
      if (!Array.isArray(accounts) || accounts.length === 0) throw new Error("the wallet shared no account");
      const address = String(accounts[0]);
      let chain = null;
      try {
        chain = parseInt(await eth.request({ method: "eth_chainId" }), 16);
        if (!Number.isSafeInteger(chain) || chain <= 0) chain = null;
      } catch (_) { chain = null; }
      const made = await api("siwe/message", chain ? { address, chain_id: chain } : { address });
      setText("status", "Your wallet shows the message to sign. Check it, then sign.");
      const signature = await eth.request({ method: "personal_sign", params: [hex(made.message), address] });
      focusJoin = true;
      await api("siwe/signature", { address, signature: String(signature) });
    } catch (e) {
      if (e && e.code === 4001) {
        say("error", "You rejected the request in your wallet, so you did not join. The host is told that you declined.");
        try { await api("decline", { reason: "the user rejected the wallet's signature request" }); } catch (_) { /* shown by the state */ }
        return;
      }
      if (e && e.server) throw e;
      throw new Error("Your wallet did not sign: " + ((e && e.message) || String(e)));
    }
  }

  function wire() {
    $("sign").addEventListener("click", () => run(signIn));
    $("join").addEventListener("click", () => run(() => api("join", {})));
    $("decline").addEventListener("click", () => run(() => api("decline", {})));
    $("start").addEventListener("click", () => run(() => api("start", {})));
    $("cancel").addEventListener("click", () => { show("really", true); $("cancel-no").focus(); });
    $("cancel-no").addEventListener("click", () => { show("really", false); $("cancel").focus(); });
    $("cancel-yes").addEventListener("click", () => { show("really", false); run(() => api("cancel", {})); });
    $("copy").addEventListener("click", async () => {
      try { await navigator.clipboard.writeText($("link").value); say("ok", "The link is copied."); } catch (_) { $("link").select(); }
    });
  }

  wire();
  buttons();
  api("state").then((v) => { if (!view) render(v); }).catch((e) => setText("status", "didmpc refused this page: " + e.message));
  follow();
})();

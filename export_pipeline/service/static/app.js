// The Reports page over the export service API: plain JavaScript, no framework, no build step.
"use strict";
(() => {
  const STORAGE = "export-service-key";
  const POLL_MS = 1500;
  const PAGE = 50, PAGE_MAX = 500;
  const $ = (id) => document.getElementById(id);
  let limit = PAGE, pollTimer = null, loading = null;

  // -- calls -----------------------------------------------------------------------------
  async function call(method, path, body) {
    const headers = { "Authorization": "Bearer " + sessionStorage.getItem(STORAGE) };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, { method, headers, body, cache: "no-store" });
    let data = null;
    if (response.status !== 204) {
      try { data = await response.json(); } catch (e) { data = null; }
    }
    return { status: response.status, data, retryAfter: Number(response.headers.get("Retry-After")) || 0 };
  }

  function problemText(answer) {
    const d = answer.data || {};
    if (answer.status === 401) return "That key was not accepted. Check it and sign in again.";
    if (answer.status === 403 && d.reason === "subscription_required") return "This account has no active subscription.";
    if (answer.status === 429) return (d.message || "Too many calls") + (answer.retryAfter ? `; try again in ${answer.retryAfter} s.` : ".");
    return d.message || `The service answered ${answer.status}` + (d.reason ? ` (${d.reason})` : "") + ".";
  }

  // -- signing in ------------------------------------------------------------------------
  function signedIn(yes) {
    $("sign-in").hidden = yes;
    $("reports").hidden = !yes;
    $("session").hidden = !yes;
  }

  async function signIn(event) {
    event.preventDefault();
    const key = $("key").value.trim();
    const message = $("sign-in-message");
    message.textContent = "Signing in…";
    message.className = "message";
    sessionStorage.setItem(STORAGE, key);
    const answer = await call("GET", "/v1/exports?limit=1");
    if (answer.status !== 200) {
      sessionStorage.removeItem(STORAGE);
      message.textContent = answer.status === 401 ? "Wrong key: the service did not accept it." : problemText(answer);
      message.className = "message error";
      $("key").focus();
      return;
    }
    $("key").value = "";
    message.textContent = "";
    signedIn(true);
    $("list-title").tabIndex = -1;
    $("list-title").focus();
    refresh();
  }

  function signOut(message) {
    sessionStorage.removeItem(STORAGE);
    clearTimeout(pollTimer);
    $("export-rows").replaceChildren();
    signedIn(false);
    const box = $("sign-in-message");
    box.textContent = message || "Signed out.";
    box.className = message ? "message error" : "message";
    $("key").focus();
  }

  // -- the list --------------------------------------------------------------------------
  function dayStart(value, plusDays) {
    const [y, m, d] = value.split("-").map(Number);
    return new Date(y, m - 1, d + plusDays).toISOString();  // the user's local midnight
  }

  function listPath() {
    const query = new URLSearchParams({ limit: String(limit) });
    if ($("created-from").value) query.set("created_after", dayStart($("created-from").value, 0));
    if ($("created-until").value) query.set("created_before", dayStart($("created-until").value, 1));
    if ($("format-filter").value) query.set("format", $("format-filter").value);
    return "/v1/exports?" + query;
  }

  function refresh() {
    clearTimeout(pollTimer);
    loading = (loading || Promise.resolve()).then(load);
    return loading;
  }

  async function load() {
    if (!sessionStorage.getItem(STORAGE)) return;
    const answer = await call("GET", listPath()).catch(() => null);
    const message = $("list-message");
    if (!answer) {
      message.textContent = "The service cannot be reached; retrying.";
      message.className = "message error";
      pollTimer = setTimeout(refresh, POLL_MS * 4);
      return;
    }
    if (answer.status === 401 || answer.status === 403) { signOut(problemText(answer)); return; }
    if (answer.status !== 200) {
      message.textContent = problemText(answer);
      message.className = "message error";
      if (answer.status === 429) pollTimer = setTimeout(refresh, Math.max(answer.retryAfter * 1000, POLL_MS));
      return;
    }
    const exports = answer.data.exports;
    render(exports);
    $("more").hidden = !answer.data.next_cursor || limit >= PAGE_MAX;
    const active = exports.filter((e) => e.status === "queued" || e.status === "running").length;
    document.body.dataset.polling = active ? "yes" : "no";
    if (message.classList.contains("error")) { message.textContent = ""; message.className = "message"; }
    clearTimeout(pollTimer);
    if (active) pollTimer = setTimeout(refresh, POLL_MS);
  }

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    node.append(...children.filter((c) => c !== null && c !== undefined));
    return node;
  }

  function render(exports) {
    const rows = exports.map(row);
    if (!rows.length) {
      rows.push(el("tr", {}, el("td", { colSpan: 8, className: "empty", textContent: "No exports match." })));
    }
    $("export-rows").replaceChildren(...rows);
  }

  function row(exp) {
    const tr = el("tr", {});
    tr.dataset.id = exp.id;
    tr.dataset.status = exp.status;
    const statusCell = el("td", {}, el("span", { className: "status status-" + exp.status, textContent: exp.status }));
    if (exp.status === "running") {
      const p = exp.progress;
      const bar = el("progress", { max: 1 });
      bar.setAttribute("aria-label", `Progress of ${exp.name}`);
      if (p && p.fetches_total) {
        bar.max = p.fetches_total;
        bar.value = p.fetches_done;
        bar.title = `${p.fetches_done} of ${p.fetches_total} store reads` + (p.rows != null ? `, ${p.rows} rows` : "");
        bar.textContent = bar.title;
      }
      statusCell.append(bar);
    }
    const created = new Date(exp.created);
    const time = el("time", { dateTime: exp.created, textContent: created.toLocaleString(), title: exp.created });
    let download = null;
    if (exp.url) {
      download = el("a", { href: exp.url, textContent: "Download " + exp.format.toUpperCase(), rel: "noopener noreferrer" });
      download.setAttribute("download", "");
      download.setAttribute("aria-label", `Download ${exp.name} (${exp.format.toUpperCase()})`);
    } else if (exp.expired) {
      // Past the retention the file is deleted: say so rather than leave the cell empty.
      const until = new Date(exp.expires_at);
      download = el("span", { className: "expired", textContent: "Expired", title: `Kept until ${until.toLocaleString()}` });
    }
    let errors = null;
    if (exp.errors && exp.errors.length) {
      errors = el("ul", { className: "errors" }, ...exp.errors.map((e) =>
        el("li", {}, e.path ? el("code", { textContent: e.path }) : null, e.path ? ": " : "", e.message)));
    }
    const remove = el("button", { type: "button", className: "danger", textContent: "Delete" });
    remove.setAttribute("aria-label", `Delete ${exp.name}`);
    remove.addEventListener("click", () => deleteExport(exp, tr));
    tr.append(
      el("th", { scope: "row", textContent: exp.name }),
      statusCell,
      el("td", {}, time),
      el("td", { textContent: exp.format.toUpperCase() }),
      el("td", { className: "num", textContent: exp.number_of_rows == null ? "" : exp.number_of_rows.toLocaleString() }),
      el("td", {}, download),
      el("td", {}, errors),
      el("td", {}, remove),
    );
    return tr;
  }

  async function deleteExport(exp, tr) {
    if (!window.confirm(`Delete the export “${exp.name}”? Its file is deleted too.`)) return;
    const answer = await call("DELETE", "/v1/exports/" + encodeURIComponent(exp.id));
    const message = $("list-message");
    if (answer.status === 204 || answer.status === 404) {
      tr.remove();
      refresh();  // after the deletion, so a list fetched before it cannot bring the row back
      message.textContent = `Deleted “${exp.name}”.`;
      message.className = "message ok";
      $("list-title").focus();
    } else {
      message.textContent = `Could not delete “${exp.name}”: ` + problemText(answer);
      message.className = "message error";
    }
  }

  // -- creating --------------------------------------------------------------------------
  async function create(body) {
    const message = $("create-message"), problems = $("problems");
    problems.replaceChildren();
    message.textContent = "Sending…";
    message.className = "message";
    const answer = await call("POST", "/v1/exports", JSON.stringify(body));
    if (answer.status === 202) {
      message.textContent = `Export “${answer.data.name}” created; it is at the top of the list.`;
      message.className = "message ok";
      refresh();
      return true;
    }
    if (answer.status === 401) { signOut(problemText(answer)); return false; }
    const d = answer.data || {};
    message.textContent = answer.status === 422 ? "The request has problems; nothing was started:"
      : answer.status === 403 && d.reason === "out_of_scope" ? "Outside what this key may export:"
      : problemText(answer);
    message.className = "message error";
    problems.replaceChildren(...(d.errors || []).map((e) =>
      el("li", {}, el("code", { textContent: e.path || "(the request)" }), ": ", e.message)));
    return false;
  }

  function showLocalProblem(text) {
    $("problems").replaceChildren();
    $("create-message").textContent = text;
    $("create-message").className = "message error";
  }

  async function uploadRequest(event) {
    event.preventDefault();
    const file = $("request-file").files[0];
    if (!file) { showLocalProblem("Choose a request file first."); return; }
    const text = await file.text();
    let document;
    try {
      document = parseRequest(text);
    } catch (error) {
      showLocalProblem(`${file.name} is neither JSON nor YAML this page reads: ${error.message}`);
      return;
    }
    if (await create(document)) $("upload-form").reset();
  }

  async function createSaved(event) {
    event.preventDefault();
    const body = { savedExport: $("saved-name").value.trim(), start: $("saved-start").value.trim(), end: $("saved-end").value.trim() };
    if (await create(body)) $("saved-form").reset();
  }

  // -- request files: JSON, or the block-style YAML request files are written in ----------
  function parseRequest(text) {
    try { return JSON.parse(text); } catch (jsonError) {
      if (/^\s*[\[{]/.test(text.replace(/^(\s*#.*\n)*/, ""))) throw jsonError;
      return parseYaml(text);
    }
  }

  function parseYaml(text) {
    const lines = [];
    text.replace(/\r\n?/g, "\n").split("\n").forEach((raw, i) => {
      if (/^\s*(#.*)?$/.test(raw) || /^(---|\.\.\.)\s*$/.test(raw)) return;
      if (/^\s*\t/.test(raw)) throw new Error(`line ${i + 1}: tabs cannot indent YAML`);
      lines.push({ indent: raw.match(/^ */)[0].length, text: stripComment(raw.trim()), no: i + 1 });
    });
    let pos = 0;
    const fail = (line, what) => { throw new Error(`line ${line.no}: ${what}`); };

    function block(indent) {
      const line = lines[pos];
      if (!line || line.indent < indent) return null;
      return line.text.startsWith("- ") || line.text === "-" ? sequence(line.indent) : mapping(line.indent);
    }
    function sequence(indent) {
      const out = [];
      while (pos < lines.length && lines[pos].indent === indent && (lines[pos].text.startsWith("- ") || lines[pos].text === "-")) {
        const line = lines[pos];
        const rest = line.text.slice(1).trimStart();
        if (!rest) { pos++; out.push(block(indent + 1)); continue; }
        const inner = indent + line.text.length - rest.length;
        if (isKey(rest)) {  // "- key: value" opens a mapping indented under the dash
          lines[pos] = { indent: inner, text: rest, no: line.no };
          out.push(mapping(inner));
        } else { pos++; out.push(scalarOrFlow(rest, line)); }
      }
      return out;
    }
    function mapping(indent) {
      const out = {};
      while (pos < lines.length && lines[pos].indent === indent) {
        const line = lines[pos];
        const m = line.text.match(/^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^#:{}\[\],][^:#]*?)\s*:(?:\s+(.*))?$/);
        if (!m) fail(line, "expected 'key: value'");
        const key = String(scalar(m[1], line));
        if (Object.prototype.hasOwnProperty.call(out, key)) fail(line, `duplicate key '${key}'`);
        pos++;
        const value = m[2] === undefined ? "" : m[2];
        if (value === "") {
          const next = lines[pos];
          const nested = next && (next.indent > indent || (next.indent === indent && next.text.startsWith("- ")));
          out[key] = nested ? block(next.indent) : null;
        } else if (/^[|>][-+]?$/.test(value)) {
          out[key] = blockScalar(value, indent, line);
        } else out[key] = scalarOrFlow(value, line);
      }
      if (pos < lines.length && lines[pos].indent > indent) fail(lines[pos], "unexpected indentation");
      return out;
    }
    function blockScalar(style, indent, line) {
      const raw = text.replace(/\r\n?/g, "\n").split("\n");
      const body = [];
      let i = line.no, width = null;
      for (; i < raw.length; i++) {
        const r = raw[i];
        if (r.trim() === "") { body.push(""); continue; }
        const w = r.match(/^ */)[0].length;
        if (w <= indent) break;
        if (width === null) width = w;
        body.push(r.slice(Math.min(width, w)));
      }
      while (body.length && body[body.length - 1] === "") body.pop();
      while (pos < lines.length && lines[pos].no <= i) pos++;
      const joined = style[0] === "|" ? body.join("\n") : body.join(" ").replace(/ ?\n ?/g, "\n");
      return style.endsWith("-") ? joined : joined + "\n";
    }
    function isKey(s) { return /^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^#:{}\[\],"'][^:#]*?)\s*:(\s|$)/.test(s); }
    function scalarOrFlow(value, line) {
      if (value[0] === "[" || value[0] === "{") return flow(value, line);
      if (/^[&*!]/.test(value)) fail(line, "anchors, aliases and tags are not read here; use JSON");
      return scalar(value, line);
    }
    function flow(value, line) {  // [a, "b", 1] and {k: v}: quote the plain words, read as JSON
      let out = "", i = 0;
      while (i < value.length) {
        const c = value[i];
        if ("[]{},:".includes(c) || c === " ") { out += c; i++; continue; }
        if (c === '"' || c === "'") {
          const end = c === '"' ? /^"(?:[^"\\]|\\.)*"/ : /^'(?:[^']|'')*'/;
          const m = value.slice(i).match(end);
          if (!m) fail(line, "an unclosed quote");
          out += JSON.stringify(scalar(m[0], line)); i += m[0].length; continue;
        }
        const m = value.slice(i).match(/^[^,\[\]{}]+?(?=\s*(?:[,\]}]|:\s|$))/);
        if (!m) fail(line, "cannot read this flow collection");
        out += JSON.stringify(scalar(m[0].trim(), line)); i += m[0].length;
      }
      try { return JSON.parse(out); } catch (e) { fail(line, "cannot read this flow collection"); }
    }
    function scalar(s, line) {
      if (s[0] === '"') { try { return JSON.parse(s); } catch (e) { fail(line, "a bad double-quoted string"); } }
      if (s[0] === "'") return s.slice(1, -1).replace(/''/g, "'");
      if (/^(null|Null|NULL|~)$/.test(s)) return null;
      if (/^(true|True|TRUE)$/.test(s)) return true;
      if (/^(false|False|FALSE)$/.test(s)) return false;
      if (/^[-+]?(0|[1-9][0-9]*)$/.test(s)) return Number(s);
      if (/^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/.test(s)) return Number(s);
      return s;
    }
    function stripComment(s) {
      let quote = null;
      for (let i = 0; i < s.length; i++) {
        const c = s[i];
        if (quote) { if (c === quote && s[i - 1] !== "\\") quote = null; }
        else if (c === '"' || c === "'") { if (i === 0 || /[\s\[{,:-]/.test(s[i - 1])) quote = c; }
        else if (c === "#" && (i === 0 || s[i - 1] === " ")) return s.slice(0, i).trimEnd();
      }
      return s;
    }

    const result = block(0);
    if (pos < lines.length) fail(lines[pos], "unexpected indentation");
    if (result === null || typeof result !== "object" || Array.isArray(result)) throw new Error("a request file holds one mapping");
    return result;
  }

  // -- wiring ----------------------------------------------------------------------------
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => signOut());
  $("upload-form").addEventListener("submit", uploadRequest);
  $("saved-form").addEventListener("submit", createSaved);
  $("filters").addEventListener("submit", (e) => { e.preventDefault(); limit = PAGE; refresh(); });
  $("filters").addEventListener("change", () => { limit = PAGE; refresh(); });
  $("filters").addEventListener("reset", () => setTimeout(() => { limit = PAGE; refresh(); }));
  $("more").addEventListener("click", () => { limit = Math.min(limit + PAGE, PAGE_MAX); refresh(); });
  // Signed URLs expire: a tab coming back into view gets fresh ones.
  document.addEventListener("visibilitychange", () => { if (!document.hidden && sessionStorage.getItem(STORAGE)) refresh(); });
  if (sessionStorage.getItem(STORAGE)) { signedIn(true); refresh(); }
})();

/*! Northstar in-app widget: one file, no dependencies, no build step. See docs/surveys.md.
    Northstar.identify({token}), .show(surveyKey, {mode, locale, force}), .inbox({locale}) */
(function (w, d) {
  "use strict";
  var stub = w.Northstar;
  if (stub?.version) return;
  const me = d.currentScript || d.querySelector('script[src*="/embed/v1/widget.js"]');
  const BASE = new URL(me.src, location.href).origin;
  const attr = (n) => me.getAttribute("data-" + n);
  const WS = attr("workspace") || "default";
  const FRAME = attr("frame");
  const ready = new Promise((r) => (d.body ? r() : d.addEventListener("DOMContentLoaded", r)));
  let token = null;
  let current = null;
  let parentOrigin = "*";
  let sheet, cards;

  const CSS = `
:host{all:initial!important;display:block!important;font:15px/1.45 -apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif!important;color:#1f2933!important}
*{box-sizing:border-box}[hidden]{display:none!important}
.ov{position:fixed;inset:0;z-index:2147483000;background:rgba(17,24,39,.42);display:flex;align-items:center;justify-content:center;padding:24px;animation:f .16s ease-out}
.dlg{background:#fff;width:100%;max-width:560px;max-height:calc(100vh - 48px);display:flex;flex-direction:column;border-radius:12px;box-shadow:0 24px 60px rgba(15,23,42,.28);overflow:hidden;animation:u .2s ease-out}
.inl{max-width:none;max-height:none;border-radius:0;box-shadow:none;animation:none}
iframe{display:block;width:100%;border:0;height:240px;max-height:calc(100vh - 48px)}
.hd{display:flex;gap:12px;align-items:flex-start;padding:20px 24px 0}
h2{flex:1;margin:0;font-size:18px;line-height:1.35}
.x{flex:none;width:32px;height:32px;margin:-4px -8px 0 0;border:0;border-radius:6px;background:none;color:#5f6b7a;font-size:22px;line-height:1;cursor:pointer}.x:hover{background:#f1f3f6}
.pg{padding:10px 24px 0;font-size:12.5px;color:#5f6b7a}.bar{height:4px;margin-top:6px;background:#e8ebf0;border-radius:2px}.bar i{display:block;height:100%;background:#2457d6;border-radius:2px;transition:width .2s}
.intro{margin:8px 24px 0;font-size:14px;color:#4b5563}
form{display:contents}.bd{flex:1;overflow:auto;overscroll-behavior:contain;padding:18px 24px 8px}
.ft{display:flex;gap:8px;justify-content:flex-end;align-items:center;padding:14px 24px 18px;border-top:1px solid #eceff3}
fieldset{border:0;margin:0;padding:0;min-width:0}legend{padding:0;margin:0 0 6px;font-size:16px;font-weight:600}
.help{margin:0 0 10px;font-size:13px;color:#5f6b7a}
.grp{margin:14px 0 2px;font-size:11.5px;font-weight:600;letter-spacing:.05em;text-transform:uppercase;color:#5f6b7a}
.opt{display:flex;gap:10px;align-items:flex-start;margin:8px 0;padding:11px 12px;border:1px solid #d5dae1;border-radius:8px;cursor:pointer}
.opt:hover{border-color:#9aa5b1}.opt:has(:checked){border-color:#2457d6;background:#f4f7fe}
.opt input{flex:none;width:16px;height:16px;margin:2px 0 0;accent-color:#2457d6}
.opt b{display:block;font-weight:600}.opt small{display:block;margin-top:2px;font-size:13px;color:#5f6b7a}
.kr{margin:0 0 12px;padding:12px 14px 14px;border:1px solid #e3e7ec;border-radius:8px}.kr legend{float:left;width:100%;margin:0;font-size:14.5px}.kr small{display:block;clear:left;margin-bottom:10px;font-size:13px;color:#5f6b7a}
.row{display:grid;grid-template-columns:1fr 1fr 1.3fr;gap:10px}
label.f{display:block;font-size:12.5px;font-weight:600;color:#4b5563}.em{margin-top:18px}
input.i,textarea{display:block;width:100%;margin-top:4px;padding:8px 10px;font:inherit;font-size:15px;font-weight:400;color:inherit;background:#fff;border:1px solid #c4cbd4;border-radius:6px}
input.i{height:38px}textarea{min-height:96px;resize:vertical}:is(input,textarea)[aria-invalid=true]{border-color:#c2410c}
.sc{display:grid;grid-template-columns:repeat(11,1fr);gap:5px}.sc.c5{grid-template-columns:repeat(5,1fr)}
.sc button{height:40px;padding:0;font:inherit;font-size:14px;font-weight:600;color:#1f2933;background:#fff;border:1px solid #c4cbd4;border-radius:6px;cursor:pointer}
.sc button:hover{border-color:#2457d6}.sc [aria-checked=true]{background:#2457d6;border-color:#2457d6;color:#fff}
.ends{display:flex;justify-content:space-between;margin-top:6px;font-size:12.5px;color:#5f6b7a}
.err{margin:8px 0 0;font-size:13.5px;color:#b42318}.err:empty{display:none}
.btn{display:inline-flex;align-items:center;justify-content:center;min-height:40px;padding:0 18px;font:inherit;font-size:14.5px;font-weight:600;color:#fff;background:#2457d6;border:1px solid #2457d6;border-radius:8px;cursor:pointer;text-decoration:none}
.btn:hover{background:#1d48b5}.btn.s{color:#1f2933;background:#fff;border-color:#c4cbd4;margin-right:auto}.btn[aria-busy=true]{opacity:.7;cursor:progress}
.done{padding:12px 0 16px;text-align:center}.ok{display:inline-flex;align-items:center;justify-content:center;width:44px;height:44px;margin-bottom:10px;border-radius:50%;background:#e7f5ee;color:#1c7c54;font-size:22px;font-weight:700}
.done p{margin:0 auto 18px;max-width:400px;font-size:16px}
:focus{outline:none}:focus-visible{outline:2px solid #2457d6;outline-offset:2px}[tabindex='-1']:focus-visible{outline:none}.opt:has(:focus-visible){border-color:#2457d6;box-shadow:0 0 0 1px #2457d6}
@media (max-width:540px){.ov{align-items:flex-end;padding:0}.ov>.dlg{max-width:none;max-height:92vh;border-radius:14px 14px 0 0}iframe{max-height:92vh}
.hd{padding:16px 16px 0}.pg{padding:8px 16px 0}.intro{margin:6px 16px 0}.bd{padding:14px 16px 6px}.ft{padding:12px 16px 16px}
.row{grid-template-columns:1fr 1fr}.row label:last-child{grid-column:1/-1}.sc{grid-template-columns:repeat(6,1fr)}}
.ib{position:fixed;right:0;bottom:0;z-index:2147482999;width:392px;max-width:100%;max-height:100%;overflow:auto;padding:6px 16px 16px;pointer-events:none}
.cd{pointer-events:auto;display:flex;gap:4px;margin-top:10px;padding:14px 12px 6px 16px;background:#fff;border:1px solid #e3e7ec;border-radius:10px;box-shadow:0 6px 16px rgba(15,23,42,.18);animation:u .2s ease-out}
.cd>div{flex:1;min-width:0;overflow-wrap:anywhere}.cd p{margin:0 0 8px}.cd a{color:#2457d6;font-weight:600}.cd .x{margin:-6px -4px 0 0}
@keyframes f{from{opacity:0}}@keyframes u{from{opacity:0;transform:translateY(12px)}}
@media (prefers-reduced-motion:reduce){*{animation:none!important;transition:none!important}}
`;

  function el(tag, props, kids) {
    const e = d.createElement(tag);
    for (const k in props || {}) {
      const v = props[k];
      if (v == null || v === false) continue;
      if (k === "text") e.textContent = v;
      else if (k.slice(0, 2) === "on") e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of kids || []) if (c) e.append(c);
    return e;
  }
  const fmt = (s, k, v) => String(s || "").replace("{" + k + "}", v);
  const empty = (v) => v == null || v === "" || (typeof v === "object" && !Object.keys(v).length);
  const truthy = (v) => (Array.isArray(v) ? v.length > 0 : !!v);
  const day = (n) => new Date(Date.now() + n * 864e5 - new Date().getTimezoneOffset() * 6e4).toISOString().slice(0, 10);
  const store = (k, v) => {
    try {
      return v === undefined ? localStorage.getItem(k) : v === null ? localStorage.removeItem(k) : localStorage.setItem(k, v);
    } catch {}
  };
  function who() {
    try {
      const c = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
      return c.account + "/" + c.sub;
    } catch {
      return "anonymous";
    }
  }
  async function call(method, path, body) {
    const headers = { "X-Northstar-Workspace": WS };
    if (token) headers.Authorization = "Bearer " + token;
    if (body) headers["Content-Type"] = "application/json";
    try {
      const r = await fetch(BASE + path, { method, headers, body: body && JSON.stringify(body), credentials: "omit" });
      return { ok: r.ok, data: await r.json().catch(() => ({})) };
    } catch {
      return { ok: false, data: {} };
    }
  }
  const localeOf = (o) => o.locale || attr("locale") || d.documentElement.lang || navigator.language || "en";
  const post = (m) => FRAME && w.parent !== w && w.parent.postMessage(m, parentOrigin);

  // show_if: a JSON Logic subset
  function logic(r, data) {
    if (Array.isArray(r)) return r.map((x) => logic(x, data));
    if (!r || typeof r !== "object") return r;
    const op = Object.keys(r)[0];
    const a = [].concat(r[op]);
    if (op === "and" || op === "or") {
      let v;
      for (const x of a) if (((v = logic(x, data)), op === "and" ? !truthy(v) : truthy(v))) return v;
      return v;
    }
    const v = a.map((x) => logic(x, data));
    const [p, q, z] = v;
    switch (op) {
      case "var": {
        let o = data;
        if (p == null || p === "") return o;
        for (const k of String(p).split(".")) o = o?.[k];
        return o === undefined ? q ?? null : o;
      }
      case "==": return p == q;
      case "!=": return p != q;
      case "===": return p === q;
      case "!==": return p !== q;
      case "<": return p < q && (v.length < 3 || q < z);
      case "<=": return p <= q && (v.length < 3 || q <= z);
      case ">": return p > q;
      case ">=": return p >= q;
      case "!": return !truthy(p);
      case "!!": return truthy(p);
      case "in": return (typeof q === "string" || Array.isArray(q)) && q.indexOf(p) >= 0;
    }
    throw op;
  }
  function shows(q, answers) {
    try {
      return !q.show_if || truthy(logic(q.show_if, { answers }));
    } catch {
      return true;
    }
  }

  function shade() {
    const host = el("div", { "data-northstar": "" });
    const root = host.attachShadow({ mode: "closed" });
    if (root.adoptedStyleSheets) (sheet = sheet || new CSSStyleSheet()).replaceSync(CSS), (root.adoptedStyleSheets = [sheet]);
    else root.append(el("style", { text: CSS }));
    d.body.append(host);
    return { host, root };
  }

  function mount(inline, lang, onEscape) {
    const { host, root } = shade();
    const dlg = el("div", {
      class: "dlg" + (inline ? " inl" : ""),
      role: inline ? "region" : "dialog",
      "aria-modal": !inline && "true",
      "aria-labelledby": "t",
      lang,
    });
    root.append(inline ? dlg : el("div", { class: "ov" }, [dlg]));
    const back = d.activeElement;
    dlg.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.preventDefault();
        e.stopPropagation();
        onEscape();
      } else if (e.key === "Tab") {
        const f = [...dlg.querySelectorAll("button,input,textarea,a[href],iframe")].filter(
          (x) => x.tabIndex >= 0 && x.getClientRects().length
        );
        const at = root.activeElement;
        const to = e.shiftKey ? (at === f[0] || !at) && f[f.length - 1] : (at === f[f.length - 1] || !at) && f[0];
        if (to) {
          e.preventDefault();
          to.focus();
        }
      }
    });
    return {
      dlg,
      root,
      remove() {
        host.remove();
        if (back?.focus && d.contains(back)) back.focus();
      },
    };
  }

  function iframe(key, o, end) {
    const locale = localeOf(o);
    const src = BASE + "/embed/v1/frame/" + encodeURIComponent(key) + "?workspace=" + encodeURIComponent(WS) + "&locale=" + encodeURIComponent(locale);
    const ifr = el("iframe", { src, title: key });
    let ui, completed = false;
    function onMessage(e) {
      const m = e.data || {};
      if (e.source !== ifr.contentWindow || e.origin !== BASE) return;
      if (m.northstar === "ready") ifr.contentWindow.postMessage({ northstar: "identify", token, force: !!o.force }, BASE);
      else if (m.northstar === "height") {
        ifr.style.height = Math.ceil(m.value) + "px";
        if (m.title) ui.dlg.setAttribute("aria-label", (ifr.title = m.title));
        if (ui.dlg.parentNode.hidden) {
          ui.dlg.parentNode.hidden = false;
          ifr.focus();
        }
      } else if (m.northstar === "done") completed = true;
      else if (m.northstar === "close") {
        w.removeEventListener("message", onMessage);
        ui.remove();
        end(m.status || (completed ? "completed" : "dismissed"));
      }
    }
    ready.then(() => {
      ui = mount(false, locale, () => 0);
      ui.dlg.parentNode.hidden = true;
      ui.dlg.append(ifr);
      w.addEventListener("message", onMessage);
    });
  }

  async function survey(key, o, end) {
    const inline = o.mode === "inline";
    const locale = localeOf(o);
    const res = await call("GET", "/embed/v1/surveys/" + encodeURIComponent(key) + "?locale=" + encodeURIComponent(locale));
    await ready;
    const def = res.data;
    const problem = !res.ok ? def : !def.identified && !def.anonymous && { detail: "call Northstar.identify({token}) first" };
    if (problem) console.warn("Northstar:", problem.detail || "no answer from " + BASE);
    if (problem ? !problem.title : !def.state.show && !o.force) {
      post({ northstar: "close", status: problem ? "error" : "skipped" });
      return end(problem ? "error" : "skipped", problem?.detail);
    }
    let status = problem ? "error" : "dismissed";
    let busy = false;
    const S = { close: "Close", ...def.strings };
    const ui = mount(inline, locale.split("-")[0], () => close());
    const dlg = ui.dlg;
    const height = () => post({ northstar: "height", value: dlg.getBoundingClientRect().height, title: def.title });
    if (inline) new ResizeObserver(height).observe(dlg);
    const x = el("button", { type: "button", class: "x", "aria-label": S.close, title: S.close, text: "\u00d7", onclick: () => close() });

    function close() {
      if (status === "dismissed" && token) call("POST", "/embed/v1/surveys/" + encodeURIComponent(key) + "/dismiss");
      ui.remove();
      post({ northstar: "close", status });
      end(status, problem?.detail);
    }
    const hd = el("div", { class: "hd" }, [el("h2", { id: "t", tabindex: problem && -1, text: (problem || def).title }), x]);
    if (problem) {
      dlg.append(hd, el("div", { class: "bd" }, [el("p", { role: "alert", text: problem.detail })]));
      hd.firstChild.focus();
      return height();
    }

    const Q = def.questions;
    const lib = def.library;
    const identified = !!def.identified;
    const needEmail = def.anonymous && !identified;
    const idKey = ["northstar", WS, key, who()].join(":");
    const st = def.state;
    let answers = { ...st.partial?.answers };
    let crid = st.partial?.client_response_id || (!st.completed && store(idKey)) || crypto.getRandomValues(new Uint32Array(4)).join("-");
    let email = "";
    let errors = {};
    let seq = 0;
    if (identified) store(idKey, crid);

    const picked = (kind, a) => Q.filter((q) => q.kind === kind).flatMap((q) => a[q.key] || []);

    let cur;
    const lastPick = Q.map((q) => q.kind).lastIndexOf("objective_pick");
    const at = (k) => Q.findIndex((q) => q.key === k);
    function walk() {
      const clean = {};
      const list = [];
      let more = 0;
      for (const [i, q] of Q.entries()) {
        if (!shows(q, clean)) {
          // up to an answer still to give, here or ahead: counted, so "of M" never grows
          more += (JSON.stringify(q.show_if).match(/answers\.[^".]+/g) || []).some((k) => {
            const j = at((k = k.slice(8)));
            return j < i && j >= at(cur) && !(k in clean);
          });
          continue;
        }
        let v = answers[q.key];
        if (q.kind === "objective_pick" && v) {
          const ok = lib.objectives.filter((x) => picked("outcome_pick", clean).includes(x.outcome)).map((x) => x.key);
          v = v.filter((k) => ok.includes(k));
        }
        if (q.kind === "key_result") {
          const chosen = picked("objective_pick", clean);
          if (!chosen.length && at(cur) > lastPick) continue;
          v = v && Object.fromEntries(chosen.filter((k) => v[k]).map((k) => [k, v[k]]));
        }
        list.push(q);
        if (!empty(v)) clean[q.key] = v;
      }
      return { list, clean, more };
    }
    {
      const { list, clean } = walk();
      cur = (list.find((q) => !(q.key in clean)) || list[list.length - 1]).key;
    }

    const intro = el("p", { class: "intro", id: "intro", text: def.intro || "" });
    const progress = el("span");
    const fill = el("i");
    const pg = el("div", { class: "pg" }, [progress, el("div", { class: "bar", "aria-hidden": "true" }, [fill])]);
    const body = el("div", { class: "bd" });
    const general = el("p", { class: "err", role: "alert" });
    const backBtn = el("button", { type: "button", class: "btn s", text: S.back, onclick: () => go(-1) });
    const nextBtn = el("button", { type: "submit", class: "btn" });
    const ft = el("div", { class: "ft" }, [backBtn, nextBtn]);
    const form = el("form", { novalidate: true, onsubmit: next }, [body, ft]);
    dlg.append(hd, intro, pg, form);
    if (def.intro) dlg.setAttribute("aria-describedby", "intro");
    let errBox, emailBox, emailErr;

    function nav() {
      const { list, clean, more } = walk();
      const i = list.findIndex((q) => q.key === cur);
      const last = i === list.length - 1;
      const m = list.length + more;
      progress.textContent = fmt(fmt(S.step, "n", i + 1), "total", m);
      fill.style.width = ((i + 1) * 100) / m + "%";
      nextBtn.textContent = last && !more ? S.submit : S.next;
      backBtn.hidden = i === 0;
      intro.hidden = i > 0 || !def.intro;
      if (emailBox) emailBox.hidden = !last;
      return { list, i, last, clean };
    }
    function changed() {
      errors = {};
      showErrors(false);
      nav();
    }

    function render() {
      const { list } = walk();
      const q = list.find((z) => z.key === cur) || list[0];
      cur = q.key;
      const id = "q-" + q.key;
      const help = [q.help && el("p", { class: "help", id: id + "-h", text: q.help })];
      if (q.max && /pick|multi/.test(q.kind)) help.push(el("p", { class: "help", text: fmt(S.choose_at_most, "max", q.max) }));
      errBox = el("p", { class: "err", id: id + "-e", role: "alert" });
      const fs = el("fieldset", { "aria-describedby": (q.help ? id + "-h " : "") + id + "-e" }, [
        el("legend", { id: id + "-l", tabindex: -1, text: q.title }),
        ...help,
        ...controls(q, id),
        errBox,
      ]);
      body.replaceChildren(fs, general);
      if (needEmail) {
        const input = el("input", { class: "i", type: "email", autocomplete: "email", "aria-required": "true", value: email, oninput: (e) => ((email = e.target.value.trim()), changed()) });
        emailErr = el("p", { class: "err", role: "alert" });
        fs.after((emailBox = el("label", { class: "f em" }, [S.email, input, emailErr])));
      }
      body.scrollTop = 0;
      nav();
      body.querySelector("legend").focus();
      height();
    }

    function option(q, name, multi, value, label, sub) {
      const base = "o" + ++seq;
      const input = el("input", {
        type: multi ? "checkbox" : "radio",
        name,
        value,
        "aria-labelledby": base,
        "aria-describedby": sub && base + "-d",
        onchange: () => {
          answers[q.key] = multi ? [...body.querySelectorAll("input[name='" + name + "']:checked")].map((e) => e.value) : value;
          changed();
        },
      });
      const a = answers[q.key];
      input.checked = multi ? (a || []).includes(value) : a === value;
      return el("label", { class: "opt" }, [input, el("span", {}, [el("b", { id: base, text: label }), sub && el("small", { id: base + "-d", text: sub })])]);
    }

    function controls(q, id) {
      const k = q.kind;
      if (k === "outcome_pick") return lib.outcomes.map((o) => option(q, id, true, o.key, o.title, o.description));
      if (k === "objective_pick") {
        const out = [];
        const chosen = picked("outcome_pick", walk().clean);
        for (const oc of lib.outcomes.filter((o) => chosen.includes(o.key))) {
          if (chosen.length > 1) out.push(el("p", { class: "grp", text: oc.title }));
          for (const ob of lib.objectives.filter((x) => x.outcome === oc.key))
            out.push(option(q, id, true, ob.key, ob.title, ob.metric + (ob.unit ? " (" + ob.unit + ")" : "")));
        }
        return out;
      }
      if (k === "single_choice" || k === "multi_choice") return q.options.map((o) => option(q, id, k === "multi_choice", o.value, o.label));
      if (k === "key_result") return keyResults(q);
      if (k === "nps" || k === "csat") return scale(q, id, k === "nps" ? 0 : 1, k === "nps" ? 10 : 5);
      const t = el("textarea", {
        maxlength: Math.min(q.max_length || 2000, 2000),
        "aria-labelledby": id + "-l",
        oninput: () => ((answers[q.key] = t.value), changed()),
      });
      t.value = answers[q.key] || "";
      return [t];
    }

    function keyResults(q) {
      const chosen = picked("objective_pick", walk().clean);
      const a = (answers[q.key] = { ...answers[q.key] });
      return chosen.map((key) => {
        const ob = lib.objectives.find((x) => x.key === key) || { title: key };
        const kr = (a[key] = a[key] || { baseline: ob.baseline, target: ob.target, due_date: day(ob.days || 90) });
        const field = (name, type) => {
          const input = el("input", {
            class: "i",
            type,
            name: key + "." + name,
            step: type === "number" && "any",
            inputmode: type === "number" && "decimal",
            min: type === "date" && day(1),
            "aria-required": "true",
            oninput: () => {
              kr[name] = input.value === "" ? null : type === "number" ? input.valueAsNumber : input.value;
              changed();
            },
          });
          input.value = kr[name] ?? "";
          return el("label", { class: "f" }, [S[name], input]);
        };
        return el("fieldset", { class: "kr" }, [
          el("legend", { text: ob.title }),
          el("small", { text: ob.metric ? ob.metric + (ob.unit ? " (" + ob.unit + ")" : "") : "" }),
          el("div", { class: "row" }, [field("baseline", "number"), field("target", "number"), field("due_date", "date")]),
          el("p", { class: "err", role: "alert", "data-kr": key }),
        ]);
      });
    }

    function scale(q, id, lo, hi) {
      const buttons = [];
      const pick = (n, focus) => {
        answers[q.key] = n;
        buttons.forEach((b, j) => {
          b.setAttribute("aria-checked", j + lo === n);
          b.tabIndex = j + lo === n ? 0 : -1;
        });
        if (focus) buttons[n - lo].focus();
        changed();
      };
      for (let n = lo; n <= hi; n++)
        buttons.push(el("button", { type: "button", role: "radio", "aria-checked": answers[q.key] === n, tabindex: answers[q.key] === n ? 0 : -1, text: n, onclick: () => pick(n) }));
      if (answers[q.key] == null) buttons[0].tabIndex = 0;
      const group = el("div", {
        class: "sc" + (hi === 5 ? " c5" : ""),
        role: "radiogroup",
        "aria-labelledby": id + "-l",
        onkeydown: (e) => {
          const n = buttons.length;
          const at = buttons.indexOf(ui.root.activeElement);
          const to = { Home: 0, End: n - 1, ArrowRight: at + 1, ArrowDown: at + 1, ArrowLeft: at + n - 1, ArrowUp: at + n - 1 }[e.key];
          if (to != null && at >= 0) {
            e.preventDefault();
            pick(lo + (to % n), true);
          }
        },
      }, buttons);
      return q.kind === "nps" ? [group, el("div", { class: "ends", "aria-hidden": "true" }, [el("span", { text: S.nps_low }), el("span", { text: S.nps_high })])] : [group];
    }

    function check(q, v) {
      if (q.kind === "key_result")
        return Object.values(v || {}).some((kr) => ["baseline", "target", "due_date"].some((n) => kr[n] == null || kr[n] !== kr[n])) ? S.required : "";
      if (empty(v)) return q.required ? S.required : "";
      if (q.max && Array.isArray(v) && v.length > q.max) return fmt(S.choose_at_most, "max", q.max);
      return "";
    }

    function showErrors(focus) {
      const mine = errors["answers." + cur] || "";
      const cap = (m) => String(m).replace(/^./, (c) => c.toUpperCase());
      const kr = [...body.querySelectorAll("[data-kr]")].find((p) => /^[.:]/.test(mine.slice(p.dataset.kr.length)) && !mine.indexOf(p.dataset.kr));
      body.querySelectorAll("[data-kr]").forEach((p) => (p.textContent = p === kr ? cap(mine.slice(p.dataset.kr.length + 1).trim()) : ""));
      errBox.textContent = kr ? "" : cap(mine);
      body.querySelectorAll("input,textarea,[role=radiogroup]").forEach((e) => {
        const name = e.name || "";
        const bad = e.type === "email" ? errors["contact.email"] : mine && (!name.includes(".") || e.value === "" || !mine.indexOf(name + " "));
        e.setAttribute("aria-invalid", !!bad);
      });
      if (emailErr) emailErr.textContent = cap(errors["contact.email"] || "");
      general.textContent = Object.keys(errors)
        .filter((k) => k !== "answers." + cur && k !== "contact.email")
        .map((k) => cap(errors[k]))
        .join(" ");
      const bad = body.querySelector("[aria-invalid=true]");
      if (focus && bad) (bad.getAttribute("role") ? bad.querySelector("[tabindex='0']") : bad).focus();
      height();
    }

    function go(delta) {
      const { list, i, clean } = nav();
      let j = i + delta;
      if ((list[j] || {}).kind === "key_result" && !picked("objective_pick", clean).length) j += delta;
      cur = list[Math.max(0, Math.min(list.length - 1, j))].key;
      errors = {};
      render();
    }

    async function next(e) {
      e.preventDefault();
      if (busy) return;
      const { list, i, last, clean } = nav();
      const q = list[i];
      errors = {};
      const problem = check(q, clean[q.key]);
      if (problem) errors["answers." + q.key] = problem;
      if (last && needEmail && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) errors["contact.email"] = S.required;
      if (Object.keys(errors).length) return showErrors(true);
      if (!last && !identified) return go(1);
      nextBtn.setAttribute("aria-busy", (busy = true));
      const payload = { client_response_id: crid, channel: "in_app", complete: last, answers: clean, version: def.version };
      if (needEmail) payload.contact = { email };
      const r = await call("POST", "/api/v1/surveys/" + encodeURIComponent(key) + "/responses", payload);
      nextBtn.setAttribute("aria-busy", (busy = false));
      if (r.ok && last) return thanks(r.data.plan);
      if (r.ok) return go(1);
      errors = r.data.errors || { _: r.data.detail || S.error };
      const at = list.find((z) => errors["answers." + z.key]);
      if (at && at.key !== cur) {
        cur = at.key;
        render();
      }
      showErrors(true);
    }

    function thanks(plan) {
      status = "completed";
      store(idKey, null);
      post({ northstar: "done" });
      pg.hidden = intro.hidden = ft.hidden = true;
      const link = plan?.share_url && el("a", { class: "btn", href: plan.share_url, target: "_blank", rel: "noopener", text: S.open_plan });
      body.replaceChildren(el("div", { class: "done" }, [el("div", { class: "ok", "aria-hidden": "true", text: "\u2713" }), el("p", { role: "status", text: plan ? S[plan.status == "pending" ? "preparing" : "thanks"] : S.received }), link]));
      (link || x).focus();
      height();
    }

    render();
  }

  function show(key, o) {
    o = o || {};
    if (current) return current.key === key ? current.promise : Promise.resolve({ status: "busy" });
    let resolve;
    const promise = new Promise((r) => (resolve = r));
    current = { key, promise };
    const end = (status, detail) => {
      current = null;
      resolve(detail ? { status, detail } : { status });
    };
    (o.mode === "iframe" && !FRAME ? iframe : survey)(key, o, end);
    return promise;
  }
  async function inbox(o) {
    o = o || {};
    const r = await call("GET", "/embed/v1/messages?locale=" + encodeURIComponent(localeOf(o)));
    const M = r.data.messages || [];
    const S = r.data.strings;
    await ready;
    if (cards) cards.remove();
    if (!M.length) return r.ok ? { status: "empty" } : { status: "error", detail: r.data.detail };
    const { host, root } = shade();
    cards = host;
    const cardOf = (m) => {
      const to = (what) => call("POST", "/embed/v1/messages/" + m.id + "/" + what);
      const card = el("article", { class: "cd" }, [
        el("div", { onclick: (e) => e.target.closest("a") && to("clicked") }),
        el("button", { type: "button", class: "x", "aria-label": S.dismiss, title: S.dismiss, text: "\u00d7", onclick() {
          to("dismissed");
          const n = card.nextSibling || card.previousSibling;
          card.remove();
          n ? n.lastChild.focus() : host.remove();
        } }),
      ]);
      card.firstChild.innerHTML = m.html; // sanitized by the server (content/inapp.py)
      return card;
    };
    root.append(el("div", { class: "ib", role: "region", "aria-label": S.title }, M.map(cardOf)));
    return { status: "shown", count: M.length };
  }
  function identify(o) {
    const was = token && who();
    token = o?.token || null;
    if (!token && cards) cards.remove();
    else if (token && !FRAME && attr("inbox") != "off" && who() != was) inbox();
  }

  const api = { version: 1, identify, show, inbox, q: { push: (c) => run(c) } };
  function run(c) {
    const r = api[c[0]](...(c[1] || []));
    if (c[2]) Promise.resolve(r).then(c[2]);
  }
  w.Northstar = api;
  (stub?.q || []).forEach(run);

  if (FRAME) {
    let started = false;
    const start = (force) => started || ((started = true), show(FRAME, { mode: "inline", force }));
    w.addEventListener("message", (e) => {
      if (e.source !== w.parent || !e.data || e.data.northstar !== "identify") return;
      parentOrigin = e.origin;
      identify(e.data);
      start(!!e.data.force);
    });
    if (w.parent === w) start(false);
    else post({ northstar: "ready" });
  }
})(window, document);

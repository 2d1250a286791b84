/* Northstar admin: the rule editor's visual condition builder (reads and writes JSON Logic), its
   Raw JSON tab, the live check (errors at their JSON pointer, how many accounts match), the actions
   editor, and confirmations for destructive buttons. Without this script the Raw JSON textarea and
   the plain action rows still work. No framework, no build step. */
(function () {
  "use strict";

  // -- confirmations ---------------------------------------------------------------------------------
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.matches && form.matches("form[data-confirm]") && !window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });

  var OPERATORS = [
    { op: "==", label: "equals", types: ["string", "number", "boolean", "any"] },
    { op: "!=", label: "does not equal", types: ["string", "number", "boolean", "any"] },
    { op: "<", label: "is less than", types: ["number", "any"] },
    { op: "<=", label: "is at most", types: ["number", "any"] },
    { op: ">", label: "is more than", types: ["number", "any"] },
    { op: ">=", label: "is at least", types: ["number", "any"] },
    { op: "between", label: "is between", types: ["number", "any"] },
    { op: "in", label: "is one of", types: ["string", "number", "any"] },
    { op: "contains", label: "contains", types: ["list[string]", "string", "any"] },
    { op: "truthy", label: "is not empty", types: ["list[string]", "boolean", "any", "object"] },
    { op: "falsy", label: "is empty", types: ["list[string]", "boolean", "any", "object"] },
    { op: "set", label: "is set", types: ["string", "number", "boolean", "list[string]", "any", "object"] },
    { op: "notset", label: "is not set", types: ["string", "number", "boolean", "list[string]", "any", "object"] }
  ];
  var NO_VALUE = { truthy: 1, falsy: 1, set: 1, notset: 1 };
  var MODES = { all: "all of", any: "any of", none: "none of" };
  var COMPARE = { "==": 1, "!=": 1, "===": 1, "!==": 1, "<": 1, "<=": 1, ">": 1, ">=": 1 };

  function Unrepresentable(message) { this.message = message; }

  // -- JSON Logic → model -----------------------------------------------------------------------------
  function isObject(x) { return x !== null && typeof x === "object" && !Array.isArray(x); }
  function isLiteral(x) { return x === null || ["string", "number", "boolean"].indexOf(typeof x) !== -1; }
  function onlyKey(node) {
    if (!isObject(node)) return null;
    var keys = Object.keys(node);
    return keys.length === 1 ? keys[0] : null;
  }
  function args(node, key) { var a = node[key]; return Array.isArray(a) ? a : [a]; }

  // {"var": "p"}, {"var": ["p"]} or {"var": ["p", default]} → {path, form, fallback}
  function readVar(node) {
    if (onlyKey(node) !== "var") return null;
    var raw = node["var"];
    if (typeof raw === "string") return { path: raw, form: "string" };
    if (Array.isArray(raw) && typeof raw[0] === "string" && raw.length <= 2) {
      return raw.length === 2 ? { path: raw[0], form: "list", fallback: raw[1], hasFallback: true }
                              : { path: raw[0], form: "list" };
    }
    return null;
  }

  function row(v, op, extra) {
    var r = { kind: "row", field: v.path, varForm: v.form, hasFallback: !!v.hasFallback, fallback: v.fallback, op: op,
              value: "", value2: "", strict: false };
    for (var k in extra) r[k] = extra[k];
    return r;
  }

  function parseNode(node) {
    var key = onlyKey(node);
    if (key === "and" || key === "or") {
      if (!Array.isArray(node[key])) throw new Unrepresentable(key + " without a list");
      return { kind: "group", mode: key === "and" ? "all" : "any", children: node[key].map(parseNode) };
    }
    if (key === "!") {
      var inner = args(node, "!");
      if (inner.length !== 1) throw new Unrepresentable("! with several arguments");
      if (onlyKey(inner[0]) === "or" && Array.isArray(inner[0].or)) {
        return { kind: "group", mode: "none", children: inner[0].or.map(parseNode), wrapped: Array.isArray(node["!"]) };
      }
      var negated = readVar(inner[0]);
      if (negated) return row(negated, "falsy", { wrapped: Array.isArray(node["!"]) });
      throw new Unrepresentable("a negation the builder does not show");
    }
    if (key === "!!") {
      var truthy = args(node, "!!");
      var tv = truthy.length === 1 ? readVar(truthy[0]) : null;
      if (tv) return row(tv, "truthy", { wrapped: Array.isArray(node["!!"]) });
      throw new Unrepresentable("!! of something other than a field");
    }
    if (key && COMPARE[key]) {
      var a = args(node, key);
      if ((key === "<=" || key === "<") && a.length === 3) {
        var mid = readVar(a[1]);
        if (key === "<=" && mid && isLiteral(a[0]) && isLiteral(a[2])) {
          return row(mid, "between", { value: a[0], value2: a[2] });
        }
        throw new Unrepresentable("a range the builder does not show");
      }
      var left = a.length === 2 ? readVar(a[0]) : null;
      if (!left || !isLiteral(a[1])) throw new Unrepresentable("a comparison that is not field-then-value");
      var strict = key === "===" || key === "!==";
      var equal = key === "==" || key === "===";
      if (a[1] === null && (key.charAt(0) === "=" || key.charAt(0) === "!")) {
        return row(left, equal ? "notset" : "set", { strict: strict });
      }
      var op = strict ? (equal ? "==" : "!=") : key;
      return row(left, op, { value: a[1], strict: strict });
    }
    if (key === "in") {
      var b = args(node, "in");
      if (b.length === 2) {
        var hay = readVar(b[1]);
        if (hay && isLiteral(b[0])) return row(hay, "contains", { value: b[0] });
        var needle = readVar(b[0]);
        if (needle && Array.isArray(b[1]) && b[1].every(isLiteral)) return row(needle, "in", { value: b[1] });
      }
      throw new Unrepresentable("an 'in' the builder does not show");
    }
    throw new Unrepresentable("the operator " + (key || JSON.stringify(node)) + " has no builder row");
  }

  function parseCondition(value) {
    var node = parseNode(value);
    if (node.kind === "row") return { kind: "group", mode: "all", children: [node], root: true, collapse: true };
    node.root = true;
    return node;
  }

  // -- model → JSON Logic (and each node's JSON pointer, for errors) ---------------------------------
  function varNode(r) {
    if (r.varForm === "list") return { "var": r.hasFallback ? [r.field, r.fallback] : [r.field] };
    return { "var": r.field };
  }

  function serialize(node, pointer) {
    node.pointer = pointer;
    if (node.kind === "group") {
      var kids = node.children.filter(function (c) { return c.kind === "group" || c.field; });
      // A lone condition read from the JSON is written back alone, not wrapped in an "and".
      if (node.collapse && node.mode === "all" && kids.length === 1 && kids[0].kind === "row") {
        node.children.forEach(function (c) { if (c !== kids[0]) c.pointer = null; });
        return serialize(kids[0], pointer);
      }
      var base = node.mode === "none" ? pointer + (node.wrapped ? "/!/0/or/" : "/!/or/") : pointer + (node.mode === "all" ? "/and/" : "/or/");
      var list = [];
      node.children.forEach(function (c) {
        if (c.kind === "row" && !c.field) { c.pointer = null; return; }
        list.push(serialize(c, base + list.length));
      });
      if (node.mode === "none") return node.wrapped ? { "!": [{ or: list }] } : { "!": { or: list } };
      return node.mode === "all" ? { and: list } : { or: list };
    }
    var v = varNode(node);
    switch (node.op) {
      case "set": return node.strict !== false ? { "!==": [v, null] } : { "!=": [v, null] };
      case "notset": return node.strict !== false ? { "===": [v, null] } : { "==": [v, null] };
      case "truthy": return { "!!": node.wrapped === false ? v : [v] };
      case "falsy": return { "!": node.wrapped === false ? v : [v] };
      case "between": return { "<=": [node.value, v, node.value2] };
      case "in": return { "in": [v, Array.isArray(node.value) ? node.value : []] };
      case "contains": return { "in": [node.value, v] };
      case "==": case "!=":
        var o = node.strict ? (node.op === "==" ? "===" : "!==") : node.op;
        var out = {}; out[o] = [v, node.value]; return out;
      default:
        var cmp = {}; cmp[node.op] = [v, node.value]; return cmp;
    }
  }

  // -- the page ---------------------------------------------------------------------------------------
  function setUpCondition(editor) {
    var textarea = editor.querySelector("[data-condition]");
    var builderPanel = editor.querySelector("[data-builder]");
    var rawPanel = editor.querySelector("[data-raw]");
    var notice = editor.querySelector("[data-raw-notice]");
    var status = editor.querySelector("[data-live-status]");
    var tabs = editor.querySelector("[data-tabs]");
    var serverList = editor.querySelector("[data-server-errors]");
    var fieldsScript = document.getElementById("rule-fields");
    var fields = fieldsScript ? JSON.parse(fieldsScript.textContent || "[]") : [];
    var byPath = {};
    fields.forEach(function (f) { byPath[f.path] = f; });
    var errors = {};
    try { errors = JSON.parse(editor.getAttribute("data-errors") || "{}"); } catch (e) { errors = {}; }
    var model = null;
    var mode = "raw";
    var timer = null;
    var sequence = 0;
    var uid = 0;

    tabs.hidden = false;

    function fieldOf(path) { return byPath[path] || { path: path, type: "any", description: "", values: [] }; }
    function operatorsFor(type) { return OPERATORS.filter(function (o) { return o.types.indexOf(type) !== -1; }); }

    function el(tag, attrs, children) {
      var node = document.createElement(tag);
      for (var k in attrs || {}) {
        if (k === "text") node.textContent = attrs[k];
        else if (k === "class") node.className = attrs[k];
        else node.setAttribute(k, attrs[k]);
      }
      (children || []).forEach(function (c) { if (c) node.appendChild(c); });
      return node;
    }

    function coerce(type, text) {
      if (type === "boolean") return text === "true";
      if ((type === "number" || type === "any") && /^-?\d+(\.\d+)?$/.test(String(text).trim())) return Number(text);
      return text;
    }

    // Controls -------------------------------------------------------------------------------------
    function fieldSelect(r) {
      var select = el("select", { "aria-label": "Field", "data-b-field": "" });
      select.appendChild(el("option", { value: "", text: "Choose a field…" }));
      var groups = {};
      fields.forEach(function (f) {
        if (!groups[f.group]) {
          groups[f.group] = el("optgroup", { label: f.group });
          select.appendChild(groups[f.group]);
        }
        groups[f.group].appendChild(el("option", { value: f.path, text: f.path }));
      });
      if (r.field && !byPath[r.field]) select.appendChild(el("option", { value: r.field, text: r.field + " (not in the catalogue)" }));
      select.value = r.field || "";
      select.addEventListener("change", function () {
        r.field = select.value;
        var allowed = operatorsFor(fieldOf(r.field).type).map(function (o) { return o.op; });
        if (allowed.indexOf(r.op) === -1) r.op = allowed[0];
        r.value = fieldOf(r.field).type === "boolean" ? true : "";
        r.value2 = "";
        redrawRow(r, "[data-b-op]");
      });
      return select;
    }

    function opSelect(r) {
      var type = fieldOf(r.field).type;
      var select = el("select", { "aria-label": "Operator", "data-b-op": "" });
      var ops = operatorsFor(type);
      if (!ops.some(function (o) { return o.op === r.op; })) ops = ops.concat(OPERATORS.filter(function (o) { return o.op === r.op; }));
      ops.forEach(function (o) { select.appendChild(el("option", { value: o.op, text: o.label })); });
      select.value = r.op;
      select.addEventListener("change", function () {
        var before = r.op;
        r.op = select.value;
        if (r.op === "in" && !Array.isArray(r.value)) r.value = r.value === "" ? [] : [r.value];
        if (before === "in" && r.op !== "in") r.value = Array.isArray(r.value) && r.value.length ? r.value[0] : "";
        redrawRow(r, "[data-b-op]");
      });
      return select;
    }

    function valueControl(r, which) {
      var f = fieldOf(r.field);
      var label = which === 2 ? "Upper value" : r.op === "between" ? "Lower value" : "Value";
      var current = which === 2 ? r.value2 : r.value;
      function store(v) { if (which === 2) r.value2 = v; else r.value = v; changed(); }
      if (f.type === "boolean" && r.op !== "in") {
        var b = el("select", { "aria-label": label, "data-b-value": "" });
        b.appendChild(el("option", { value: "true", text: "true" }));
        b.appendChild(el("option", { value: "false", text: "false" }));
        b.value = String(current === false ? "false" : "true");
        b.addEventListener("change", function () { store(b.value === "true"); });
        return b;
      }
      if (r.op === "in") {
        if (f.values && f.values.length) {
          var multi = el("select", { multiple: "", size: String(Math.min(f.values.length, 5)), "aria-label": label + " (choose one or more)", "data-b-value": "" });
          f.values.forEach(function (v) {
            var option = el("option", { value: v, text: v });
            option.selected = Array.isArray(r.value) && r.value.indexOf(v) !== -1;
            multi.appendChild(option);
          });
          multi.addEventListener("change", function () {
            store(Array.prototype.filter.call(multi.options, function (o) { return o.selected; }).map(function (o) { return o.value; }));
          });
          return multi;
        }
        var listInput = el("input", { "aria-label": label + " (comma-separated)", placeholder: "a, b, c", "data-b-value": "", spellcheck: "false" });
        listInput.value = Array.isArray(r.value) ? r.value.join(", ") : "";
        listInput.addEventListener("input", function () {
          store(listInput.value.split(",").map(function (s) { return s.trim(); }).filter(Boolean)
            .map(function (s) { return coerce(f.type, s); }));
        });
        return listInput;
      }
      if (f.values && f.values.length && (f.type === "string" || f.type === "list[string]")) {
        var pick = el("select", { "aria-label": label, "data-b-value": "" });
        pick.appendChild(el("option", { value: "", text: "Choose…" }));
        f.values.forEach(function (v) { pick.appendChild(el("option", { value: v, text: v })); });
        if (current !== "" && f.values.indexOf(String(current)) === -1) pick.appendChild(el("option", { value: String(current), text: String(current) }));
        pick.value = current === null || current === undefined ? "" : String(current);
        pick.addEventListener("change", function () { store(pick.value); });
        return pick;
      }
      var input = el("input", { "aria-label": label, "data-b-value": "", spellcheck: "false" });
      if (f.type === "number") input.setAttribute("inputmode", "decimal");
      input.value = current === null || current === undefined ? "" : String(current);
      input.addEventListener("input", function () { store(coerce(f.type, input.value)); });
      return input;
    }

    function rowElement(r, index) {
      var f = fieldOf(r.field);
      var id = "b-" + (++uid);
      var controls = el("div", { class: "b-controls" }, [fieldSelect(r), opSelect(r)]);
      if (!NO_VALUE[r.op]) {
        controls.appendChild(valueControl(r, 1));
        if (r.op === "between") {
          controls.appendChild(el("span", { class: "b-and", text: "and", "aria-hidden": "true" }));
          controls.appendChild(valueControl(r, 2));
        }
      }
      var remove = el("button", { type: "button", class: "btn icon danger", "aria-label": "Remove condition " + index, title: "Remove condition", text: "✕" });
      remove.addEventListener("click", function () { removeNode(r); });
      controls.appendChild(remove);
      var hint = el("p", { class: "b-hint", id: id + "-hint" });
      if (r.field) {
        hint.appendChild(el("span", { class: "pill", text: f.type }));
        hint.appendChild(document.createTextNode(" " + (f.description || (byPath[r.field] ? "" : "not in the field catalogue"))));
      } else {
        hint.textContent = "Choose the fact this condition reads.";
      }
      var node = el("div", { class: "b-row", role: "group", "aria-label": "Condition " + index, "aria-describedby": id + "-hint" }, [
        controls, hint, el("p", { class: "field-error b-error", id: id + "-error", hidden: "" })
      ]);
      r.el = node;
      return node;
    }

    function groupElement(g, label) {
      var select = el("select", { "aria-label": "Match", "data-b-mode": "" });
      Object.keys(MODES).forEach(function (m) { select.appendChild(el("option", { value: m, text: MODES[m] })); });
      select.value = g.mode;
      select.addEventListener("change", function () { g.mode = select.value; changed(); });
      var head = el("div", { class: "b-group-head" }, [
        el("span", { class: "b-word", text: g.root ? "Matches when" : "" }), select,
        el("span", { class: "b-word", text: "these are true" })
      ]);
      if (!g.root) {
        var remove = el("button", { type: "button", class: "btn small quiet danger", text: "Remove group" });
        remove.addEventListener("click", function () { removeNode(g); });
        head.appendChild(remove);
      }
      var list = el("div", { class: "b-children" });
      g.children.forEach(function (c, i) {
        var childLabel = label ? label + "." + (i + 1) : String(i + 1);
        list.appendChild(c.kind === "group" ? groupElement(c, childLabel) : rowElement(c, childLabel));
      });
      if (!g.children.length) list.appendChild(el("p", { class: "muted b-empty", text: "No conditions yet: an empty group never matches." }));
      var addRow = el("button", { type: "button", class: "btn small secondary", text: "+ Condition" });
      addRow.addEventListener("click", function () {
        var r = { kind: "row", field: "", op: "==", value: "", value2: "", varForm: "string" };
        g.children.push(r);
        redraw(r, "[data-b-field]");
      });
      var addGroup = el("button", { type: "button", class: "btn small secondary", text: "+ Group" });
      addGroup.addEventListener("click", function () {
        var r = { kind: "row", field: "", op: "==", value: "", value2: "", varForm: "string" };
        var sub = { kind: "group", mode: "any", children: [r] };
        g.children.push(sub);
        redraw(r, "[data-b-field]");
      });
      var node = el("div", { class: "b-group" + (g.root ? " b-root" : ""), role: "group", "aria-label": g.root ? "Condition" : "Group " + label }, [
        head, list, el("div", { class: "b-group-foot" }, [addRow, addGroup]), el("p", { class: "field-error b-error", hidden: "" })
      ]);
      g.el = node;
      return node;
    }

    function removeNode(target) {
      (function walk(g) {
        var i = g.children.indexOf(target);
        if (i !== -1) { g.children.splice(i, 1); return true; }
        return g.children.some(function (c) { return c.kind === "group" && walk(c); });
      })(model);
      redraw(model, "[data-b-mode]");
    }

    function redraw(focusNode, selector) {
      builderPanel.textContent = "";
      builderPanel.appendChild(groupElement(model, ""));
      changed();
      if (focusNode && focusNode.el) {
        var target = focusNode.el.querySelector(selector);
        if (target) target.focus();
      }
    }

    function redrawRow(r, selector) {
      var old = r.el;
      var index = old.getAttribute("aria-label").replace("Condition ", "");
      var fresh = rowElement(r, index);
      old.parentNode.replaceChild(fresh, old);
      changed();
      var target = fresh.querySelector(selector);
      if (target) target.focus();
    }

    // Sync and check -------------------------------------------------------------------------------
    function changed() {
      if (mode === "builder" && model) {
        textarea.value = JSON.stringify(serialize(model, "/condition"));
        showErrors({});
      }
      schedule();
    }

    function nodesOf(g, out) {
      out.push(g);
      g.children.forEach(function (c) { if (c.kind === "group") nodesOf(c, out); else out.push(c); });
      return out;
    }

    function showErrors(found) {
      errors = found;
      if (!model) return;
      var nodes = nodesOf(model, []);
      nodes.forEach(function (n) {
        if (!n.el) return;
        var box = n.el.querySelector(":scope > .b-error");
        box.hidden = true;
        box.textContent = "";
        n.el.classList.remove("invalid");
        n.el.querySelectorAll(":scope > .b-controls > [aria-invalid]").forEach(function (c) { c.removeAttribute("aria-invalid"); });
      });
      Object.keys(found).forEach(function (pointer) {
        var best = null;
        nodes.forEach(function (n) {
          if (n.pointer === null || n.pointer === undefined) return;
          if ((pointer === n.pointer || pointer.indexOf(n.pointer + "/") === 0) && (!best || n.pointer.length > best.pointer.length)) best = n;
        });
        if (!best || !best.el) return;
        var box = best.el.querySelector(":scope > .b-error");
        box.hidden = false;
        box.textContent = (box.textContent ? box.textContent + " " : "") + found[pointer];
        best.el.classList.add("invalid");
        if (best.kind === "row") {
          var c = controlAt(best, pointer.slice(best.pointer.length));
          if (c) { c.setAttribute("aria-invalid", "true"); c.setAttribute("aria-errormessage", best.el.querySelector(".b-error").id); }
        }
      });
    }

    // Which control of a row an error below it points at: `/>=/0` is the field, `/>=/1` the value;
    // "contains" is {"in": [value, field]} and "between" is {"<=": [low, field, high]}.
    function controlAt(r, rest) {
      var match = /^\/[^/]+\/(\d+)/.exec(rest);
      var index = match ? Number(match[1]) : -1;
      var values = r.el.querySelectorAll("[data-b-value]");
      var field = r.el.querySelector("[data-b-field]");
      if (index === -1) return field;
      if (r.op === "contains") return index === 0 ? values[0] || field : field;
      if (r.op === "between") return index === 1 ? field : values[index === 0 ? 0 : 1] || field;
      return index === 0 ? field : values[0] || field;
    }

    function say(text, kind) {
      status.textContent = text;
      status.className = "live-status" + (kind ? " " + kind : "");
    }

    // aria-busy on the status while a check is due or on its way: assistive technology (and the
    // browser tests, before they leave the page) can tell a settled verdict from a stale one.
    function schedule() {
      window.clearTimeout(timer);
      status.setAttribute("aria-busy", "true");
      timer = window.setTimeout(check, 400);
    }

    function settled(mine) {
      if (mine === sequence && timer === null) status.removeAttribute("aria-busy");
    }

    function check() {
      timer = null;
      var value;
      try { value = JSON.parse(textarea.value); } catch (e) {
        say("The condition is not valid JSON yet: " + e.message, "bad");
        settled(sequence);
        return;
      }
      if (mode === "builder" && model && nodesOf(model, []).some(function (n) { return n.kind === "row" && !n.field; })) {
        say("Choose a field for every condition (or remove the empty ones).", "bad");
        settled(sequence);
        return;
      }
      var mine = ++sequence;
      say("Checking…", "");
      fetch(editor.getAttribute("data-validate-url"), {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": editor.getAttribute("data-csrf") },
        body: JSON.stringify({ condition: value })
      }).then(function (response) {
        return response.json();
      }).then(function (body) {
        if (mine !== sequence) return;
        var found = body.errors || {};
        var count = Object.keys(found).length;
        if (mode === "builder") showErrors(found); else errors = found;
        if (count) {
          var first = Object.keys(found)[0];
          say(count + " problem" + (count === 1 ? "" : "s") + ": " + (mode === "raw" ? (first.slice(10) || "/") + " " : "") + found[first], "bad");
        } else if (body.preview && body.preview.text) {
          var sample = body.preview.sample && body.preview.sample.length ? " For example: " + body.preview.sample.join(", ") + "." : "";
          say("✓ Valid: " + body.preview.text + "." + sample, "good");
        } else {
          say("✓ Valid: every field exists in the catalogue.", "good");
        }
      }).catch(function () {
        if (mine === sequence) say("Could not check the condition just now; saving still checks it.", "bad");
      }).then(function () { settled(mine); });
    }

    // Tabs -----------------------------------------------------------------------------------------
    function select(which, focus) {
      if (which === "builder") {
        var value;
        try { value = JSON.parse(textarea.value || '{"and": []}'); } catch (e) {
          notice.hidden = false;
          notice.textContent = "The JSON is not valid (" + e.message + "), so the builder cannot show it. Fix it here first.";
          which = "raw";
        }
        if (which === "builder") {
          try { model = parseCondition(value); } catch (e) {
            if (!(e instanceof Unrepresentable)) throw e;
            notice.hidden = false;
            notice.textContent = "The builder cannot show this condition (" + e.message + "), so it stays here as JSON. It is saved exactly as written.";
            which = "raw";
          }
        }
      }
      mode = which;
      builderPanel.hidden = which !== "builder";
      rawPanel.hidden = which !== "raw";
      if (serverList) serverList.hidden = which === "builder";
      tabs.querySelectorAll("[role=tab]").forEach(function (tab) {
        var on = tab.getAttribute("data-tab") === which;
        tab.setAttribute("aria-selected", on ? "true" : "false");
        tab.tabIndex = on ? 0 : -1;
        if (on && focus) tab.focus();
      });
      if (which === "builder") {
        notice.hidden = true;
        builderPanel.textContent = "";
        builderPanel.appendChild(groupElement(model, ""));
        serialize(model, "/condition");  // pointers for the errors, without rewriting the text
        showErrors(errors);
      }
    }

    tabs.addEventListener("click", function (event) {
      var tab = event.target.closest("[role=tab]");
      if (tab) select(tab.getAttribute("data-tab"), true);
    });
    tabs.addEventListener("keydown", function (event) {
      if (event.key !== "ArrowLeft" && event.key !== "ArrowRight" && event.key !== "Home" && event.key !== "End") return;
      event.preventDefault();
      select(mode === "builder" ? "raw" : "builder", true);
    });
    textarea.addEventListener("input", function () { if (mode === "raw") schedule(); });

    editor.closest("form").addEventListener("submit", function (event) {
      if (mode !== "builder" || !model) return;
      var empty = nodesOf(model, []).filter(function (n) { return n.kind === "row" && !n.field; });
      if (!empty.length) return;
      event.preventDefault();
      empty.forEach(function (n) {
        var box = n.el.querySelector(".b-error");
        box.hidden = false;
        box.textContent = "Choose a field, or remove this condition.";
        n.el.classList.add("invalid");
      });
      empty[0].el.querySelector("[data-b-field]").focus();
    });

    select("builder", false);
    if (Object.keys(errors).length) {
      var n = Object.keys(errors).length;
      say(n + " problem" + (n === 1 ? "" : "s") + " found when saving: see the marked conditions.", "bad");
      status.removeAttribute("aria-busy"); // the page that loaded it may have marked it busy
    } else {
      schedule();
    }
  }

  // -- actions ----------------------------------------------------------------------------------------
  function setUpActions(form) {
    var list = form.querySelector("[data-actions]");
    var template = document.getElementById("action-template");
    var addButton = form.querySelector("[data-add-action]");
    if (!list || !template || !addButton) return;

    function rows() { return Array.prototype.slice.call(list.querySelectorAll("fieldset[data-action]")); }
    // Only the chosen type's parameters; on first show, also any the server marked as wrong.
    function showParams(fieldset, changed) {
      var type = fieldset.querySelector("[data-action-type]").value;
      fieldset.querySelectorAll("[data-param]").forEach(function (field) {
        var control = field.querySelector("input, select, textarea");
        var used = field.getAttribute("data-types").split(" ").indexOf(type) !== -1;
        field.hidden = !used && (changed || !control.hasAttribute("aria-invalid"));
      });
    }
    function renumber() {
      rows().forEach(function (fieldset, i) {
        var n = String(i + 1);
        fieldset.querySelector("[data-legend]").textContent = "Action " + n;
        var number = fieldset.querySelector("[data-number]");
        if (number) number.textContent = n;
        fieldset.querySelector("[data-remove-action]").setAttribute("aria-label", "Remove action " + n);
      });
    }
    function enhance(fieldset) {
      fieldset.querySelector("[data-remove-action]").hidden = false;
      showParams(fieldset);
    }

    // Whether the user changed a control from what the server rendered, and the start-up for a
    // plain-form Remove box ticked before this deferred script ran (admin.js, which the console
    // loads before this script).
    var edited = window.NorthstarConsole.edited;
    var removeTicked = window.NorthstarConsole.removeTicked;
    // A blank row becomes an action like the others: its label and empty choice read as an action's.
    function adopt(fieldset) {
      var label = fieldset.querySelector("label[for$='-type']");
      label.textContent = "Action ";
      label.appendChild(document.createElement("span")).setAttribute("data-number", "");
      fieldset.querySelector("[data-action-type] option[value='']").textContent = "(choose)";
      fieldset.classList.remove("a-blank");
    }

    // Blank rows are how the plain form adds an action; with this script, "+ Add action" does. The
    // page can be typed into before this deferred script runs, so a blank row with something in it
    // stays as an action; an untouched one goes when the rule has actions.
    removeTicked(rows());
    var filled = rows().filter(function (f) { return !f.classList.contains("a-blank"); });
    rows().forEach(function (fieldset) {
      if (!fieldset.classList.contains("a-blank") || !filled.length) return;
      var typed = Array.prototype.some.call(fieldset.querySelectorAll("input, select, textarea"), edited);
      if (typed) adopt(fieldset); else fieldset.remove();
    });
    var next = 0;
    rows().forEach(function (fieldset) {
      next = Math.max(next, Number(fieldset.getAttribute("data-index")) + 1);
      enhance(fieldset);
    });
    renumber();
    addButton.hidden = false;

    addButton.addEventListener("click", function () {
      var index = String(next++);
      var fragment = template.content.cloneNode(true);
      fragment.querySelectorAll("[name]").forEach(function (node) { node.name = node.name.replace("__i__", index); });
      fragment.querySelectorAll("[id], [for]").forEach(function (node) {
        ["id", "for"].forEach(function (attr) {
          if (node.hasAttribute(attr)) node.setAttribute(attr, node.getAttribute(attr).replace("__i__", index));
        });
      });
      var fieldset = fragment.querySelector("fieldset");
      fieldset.setAttribute("data-index", index);
      list.appendChild(fragment);
      enhance(fieldset);
      renumber();
      fieldset.querySelector("[data-action-type]").focus();
    });
    list.addEventListener("click", function (event) {
      var button = event.target.closest("[data-remove-action]");
      if (!button) return;
      var fieldset = button.closest("fieldset[data-action]");
      var neighbour = fieldset.nextElementSibling || fieldset.previousElementSibling;
      fieldset.remove();
      renumber();
      (neighbour && neighbour.querySelector ? neighbour.querySelector("[data-action-type]") : addButton).focus();
    });
    list.addEventListener("change", function (event) {
      if (event.target.matches("[data-action-type]")) showParams(event.target.closest("fieldset"), true);
    });
  }

  document.querySelectorAll("form[data-rule-editor]").forEach(function (form) {
    var editor = form.querySelector("[data-condition-editor]");
    if (editor) setUpCondition(editor);
    setUpActions(form);
  });
})();

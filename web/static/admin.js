/* Northstar admin. The console shell (theme toggle, "/" to search, search suggestions) is the second
   block below; everything works without this script (the forms post, the search has its page).
   First block: progressive enhancement of the survey editor (add, remove, reorder questions;
   show the fields a question kind uses). Without this script the form still works: it has blank
   question slots, position numbers and remove checkboxes instead. */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function questions(list) {
    return Array.prototype.slice.call(list.querySelectorAll("fieldset[data-question]"));
  }

  function renumber(list) {
    questions(list).forEach(function (fieldset, i) {
      var n = String(i + 1);
      fieldset.querySelector("[data-number]").textContent = n;
      fieldset.querySelector("[data-legend]").textContent = "Question " + n;
      var position = fieldset.querySelector("[data-position]");
      if (position) position.value = n;
    });
  }

  function showKindFields(fieldset) {
    var select = fieldset.querySelector("[data-kind]");
    var kind = select ? select.value : "";
    fieldset.querySelectorAll("[data-kinds]").forEach(function (field) {
      var control = field.querySelector("input, textarea");
      var used = field.getAttribute("data-kinds").split(" ").indexOf(kind) !== -1;
      field.hidden = !used && !(control && control.value.trim());
    });
  }

  function label(fieldset) {
    var title = fieldset.querySelector("[data-title]").value.trim();
    var key = fieldset.querySelector("input[name$='-key']").value.trim();
    fieldset.querySelector("[data-label]").textContent = title || key || "New question";
  }

  // Empty optional fields fold into "+ Help text" / "+ Show only if" links under the question.
  function foldOptional(fieldset) {
    var more = fieldset.querySelector("[data-more]");
    var folded = 0;
    fieldset.querySelectorAll("[data-optional]").forEach(function (field) {
      var control = field.querySelector("input, textarea");
      var empty = !control.value.trim() && !control.hasAttribute("aria-invalid");
      var button = more.querySelector("[data-reveal='" + field.getAttribute("data-optional") + "']");
      field.hidden = empty;
      button.hidden = !empty;
      if (empty) folded++;
    });
    more.hidden = folded === 0;
  }

  function reveal(button) {
    var fieldset = button.closest("fieldset");
    var field = fieldset.querySelector("[data-optional='" + button.getAttribute("data-reveal") + "']");
    field.hidden = false;
    button.hidden = true;
    var more = fieldset.querySelector("[data-more]");
    more.hidden = !more.querySelector("button:not([hidden])");
    field.querySelector("input, textarea").focus();
  }

  function enhance(fieldset) {
    fieldset.querySelector("[data-tools]").hidden = false;
    showKindFields(fieldset);
    foldOptional(fieldset);
  }

  // Whether the user changed a control from what the server rendered (before a deferred script
  // ran); a single select with no option marked selected starts on its first. Shared with the
  // console's page scripts (rules-builder.js, campaign-builder.js), which run after this one.
  function edited(control) {
    if (control.type === "checkbox" || control.type === "radio") return control.checked !== control.defaultChecked;
    if (control.tagName === "SELECT") {
      var options = Array.prototype.slice.call(control.options);
      var first = options.some(function (o) { return o.defaultSelected; }) || control.multiple ? null : options[0];
      return options.some(function (o) { return o.selected !== (o.defaultSelected || o === first); });
    }
    return control.value !== control.defaultValue;
  }

  function typedInto(fieldset) {
    return Array.prototype.some.call(fieldset.querySelectorAll("input, select, textarea"), function (control) {
      return !control.hasAttribute("data-position") && edited(control);
    });
  }

  // How each editor's server orders its items by their position numbers. Each gets the items'
  // entries in page order ({item, rank, input: the [data-position] box or null}) and returns the
  // items in the order the server would save them.
  var positionOrders = {
    // web/admin/survey_form.py, _ordered_questions: an item whose number was changed to a whole
    // number goes to that place among the others, which keep their order.
    insert: function (entries) {
      var staying = [];
      var moving = [];
      entries.forEach(function (entry) {
        var typed = entry.input ? entry.input.value.trim() : "";
        if (!entry.input || !edited(entry.input) || !/^\d+$/.test(typed)) staying.push(entry.item);
        else moving.push({ position: Number(typed), rank: entry.rank, item: entry.item });
      });
      moving.sort(function (a, b) { return a.position - b.position || a.rank - b.rank; });
      moving.forEach(function (m) {
        staying.splice(Math.min(Math.max(m.position, 1), staying.length + 1) - 1, 0, m.item);
      });
      return staying;
    },
    // web/admin/campaign_form.py, parse_builder_form: every item by its number, a number that is
    // not one counting as the item's own place as rendered; ties keep the page's order.
    sort: function (entries) {
      function number(text) {
        text = text.trim();
        return /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(text) ? Number(text) : null;
      }
      var placed = entries.map(function (entry) {
        var rendered = entry.input ? number(entry.input.defaultValue) : null;
        var own = rendered === null ? entry.rank + 1 : rendered;
        var typed = entry.input ? number(entry.input.value) : null;
        return { position: typed === null ? own : typed, rank: entry.rank, item: entry.item };
      });
      placed.sort(function (a, b) { return a.position - b.position || a.rank - b.rank; });
      return placed.map(function (p) { return p.item; });
    }
  };

  // Position numbers changed before a deferred script ran move their items (siblings, in page
  // order) as the server would, by `order` (a key of positionOrders); from then on the items'
  // order in the page is the order. Shared with campaign-builder.js.
  function applyTypedPositions(items, order) {
    var entries = items.map(function (item, rank) {
      return { item: item, rank: rank, input: item.querySelector("[data-position]") };
    });
    if (!entries.some(function (entry) { return entry.input && edited(entry.input); })) return;
    var parent = items[0].parentNode;
    var after = items[items.length - 1].nextSibling;
    positionOrders[order](entries).forEach(function (item) { parent.insertBefore(item, after); });
  }

  // The plain form's "Remove" box can be ticked before a deferred script runs; the script hides it
  // (class nojs), yet it still submits and the item is deleted on save. So at start-up a ticked
  // item leaves the page as the script's own ✕ would take it: what is seen is what is saved.
  // Shared with rules-builder.js and campaign-builder.js.
  function removeTicked(items) {
    items.forEach(function (item) {
      var box = item.querySelector(".nojs input[type=checkbox][name$='-remove']");
      if (box && box.checked) item.remove();
    });
  }

  window.NorthstarConsole = {
    edited: edited,
    applyTypedPositions: applyTypedPositions,
    removeTicked: removeTicked
  };

  function setUp(form) {
    var list = form.querySelector("[data-questions]");
    var template = document.getElementById("question-template");
    var addButton = form.querySelector("[data-add-question]");
    if (!list || !template || !addButton) return;

    removeTicked(questions(list));
    // Blank slots are how the plain form adds a question; with this script, "+ Add question" does.
    // The page can be typed into before this deferred script runs, so a blank slot with something
    // in it stays as a question; an untouched one goes, except the first of a survey with none.
    var hasQuestions = questions(list).some(function (f) { return !f.classList.contains("q-blank"); });
    questions(list).forEach(function (fieldset) {
      if (!fieldset.classList.contains("q-blank")) return;
      if (hasQuestions && !typedInto(fieldset)) { fieldset.remove(); return; }
      fieldset.classList.remove("q-blank");
      label(fieldset);
      hasQuestions = true;
    });
    applyTypedPositions(questions(list), "insert");
    var next = 0;
    questions(list).forEach(function (fieldset) {
      next = Math.max(next, Number(fieldset.getAttribute("data-index")) + 1);
      enhance(fieldset);
    });
    renumber(list);
    addButton.hidden = false;

    addButton.addEventListener("click", function () {
      var index = String(next++);
      var fragment = template.content.cloneNode(true);
      fragment.querySelectorAll("[name]").forEach(function (el) {
        el.name = el.name.replace("__i__", index);
      });
      var fieldset = fragment.querySelector("fieldset");
      fieldset.setAttribute("data-index", index);
      fieldset.classList.remove("q-blank");
      fieldset.querySelector("[data-label]").textContent = "New question";
      list.appendChild(fragment);
      enhance(fieldset);
      renumber(list);
      fieldset.querySelector("input[name$='-key']").focus();
    });

    list.addEventListener("click", function (event) {
      var revealer = event.target.closest("button[data-reveal]");
      if (revealer) return reveal(revealer);
      var button = event.target.closest("button[data-move], button[data-remove]");
      if (!button) return;
      var fieldset = button.closest("fieldset[data-question]");
      if (button.hasAttribute("data-remove")) {
        var neighbour = fieldset.nextElementSibling || fieldset.previousElementSibling;
        fieldset.remove();
        renumber(list);
        (neighbour ? neighbour.querySelector("[data-remove]") : addButton).focus();
        return;
      }
      var up = button.getAttribute("data-move") === "-1";
      var other = up ? fieldset.previousElementSibling : fieldset.nextElementSibling;
      if (!other || !other.matches("fieldset[data-question]")) return;
      list.insertBefore(fieldset, up ? other : other.nextElementSibling);
      renumber(list);
      button.focus();
    });

    list.addEventListener("change", function (event) {
      if (event.target.matches("[data-kind]")) showKindFields(event.target.closest("fieldset"));
    });
    list.addEventListener("input", function (event) {
      if (event.target.matches("[data-title], input[name$='-key']")) label(event.target.closest("fieldset"));
    });
  }

  document.querySelectorAll("form[data-survey-editor]").forEach(setUp);
})();


/* The console shell. */
(function () {
  "use strict";
  var root = document.documentElement;
  var COOKIE = "ns_theme";

  // -- Theme: the server renders data-theme from the cookie; localStorage restores a lost cookie.
  function systemTheme() {
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  function currentTheme() {
    return root.getAttribute("data-theme") || systemTheme();
  }
  function remember(theme) {
    document.cookie = COOKIE + "=" + theme + "; path=/admin; max-age=31536000; SameSite=Lax";
    try { window.localStorage.setItem(COOKIE, theme); } catch (e) { /* storage off: the cookie is enough */ }
  }
  function labelToggle(button) {
    var next = currentTheme() === "dark" ? "light" : "dark";
    button.value = next;
    button.textContent = next === "dark" ? "Dark theme" : "Light theme";
    button.setAttribute("aria-label", "Switch to the " + next + " theme");
  }
  var stored = null;
  try { stored = window.localStorage.getItem(COOKIE); } catch (e) { stored = null; }
  if (!root.getAttribute("data-theme") && (stored === "light" || stored === "dark")) {
    root.setAttribute("data-theme", stored);
    remember(stored);
  }
  document.querySelectorAll("[data-theme-toggle]").forEach(function (button) {
    labelToggle(button);
    button.addEventListener("click", function (event) {
      event.preventDefault();
      var next = currentTheme() === "dark" ? "light" : "dark";
      root.setAttribute("data-theme", next);
      remember(next);
      labelToggle(button);
    });
  });

  // -- Search: "/" focuses the box; typing shows suggestions (a combobox over a listbox).
  var input = document.querySelector("[data-global-search]");
  if (!input) return;
  var form = input.form;
  var list = document.getElementById("global-suggestions");
  var status = form.querySelector("[data-suggest-status]");
  input.setAttribute("role", "combobox");
  input.setAttribute("aria-autocomplete", "list");
  input.setAttribute("aria-expanded", "false");
  input.setAttribute("aria-controls", list.id);

  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    var typing = target.closest && target.closest("input, textarea, select, [contenteditable=true]");
    if (typing) return;
    event.preventDefault();
    input.focus();
    input.select();
  });

  var timer = null;
  var latest = 0;
  var active = -1;

  function options() {
    return Array.prototype.slice.call(list.querySelectorAll("[role=option]"));
  }
  function close() {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    active = -1;
  }
  function select(index) {
    var all = options();
    if (!all.length) return;
    active = (index + all.length) % all.length;
    all.forEach(function (option, i) { option.setAttribute("aria-selected", i === active ? "true" : "false"); });
    input.setAttribute("aria-activedescendant", all[active].id);
    all[active].scrollIntoView({ block: "nearest" });
  }
  function option(id, href, label, detail, extraClass) {
    var a = document.createElement("a");
    a.id = id;
    a.href = href;
    a.setAttribute("role", "option");
    a.setAttribute("aria-selected", "false");
    a.tabIndex = -1;
    if (extraClass) a.className = extraClass;
    a.appendChild(document.createTextNode(label));
    if (detail) {
      var small = document.createElement("small");
      small.textContent = detail;
      a.appendChild(small);
    }
    return a;
  }
  var GROUPS = { accounts: "Accounts", contacts: "Contacts", campaigns: "Campaigns", content: "Content" };
  function render(data) {
    list.textContent = "";
    var kind = null;
    data.results.forEach(function (hit, i) {
      if (hit.kind !== kind) {
        kind = hit.kind;
        var head = document.createElement("p");
        head.className = "s-group";
        head.setAttribute("role", "presentation");
        head.textContent = GROUPS[kind] || kind;
        list.appendChild(head);
      }
      list.appendChild(option("suggestion-" + i, hit.url, hit.label, hit.detail, ""));
    });
    if (!data.results.length) {
      var none = document.createElement("p");
      none.className = "s-empty";
      none.textContent = "No match yet. Press Enter to search everything.";
      list.appendChild(none);
    }
    if (data.all) list.appendChild(option("suggestion-all", data.all, "See all results for “" + data.query + "”", "", "s-all"));
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    active = -1;
    status.textContent = data.results.length + " suggestion" + (data.results.length === 1 ? "" : "s");
  }
  function suggest() {
    var text = input.value.trim();
    if (text.length < 2) { close(); return; }
    var ticket = ++latest;
    fetch(input.getAttribute("data-suggest-url") + "?q=" + encodeURIComponent(text), {
      headers: { Accept: "application/json" }, credentials: "same-origin"
    }).then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (data) {
      if (data && ticket === latest && document.activeElement === input) render(data);
    }).catch(function () { close(); });
  }
  input.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(suggest, 150);
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "ArrowDown") { event.preventDefault(); if (list.hidden) suggest(); else select(active + 1); }
    else if (event.key === "ArrowUp") { event.preventDefault(); select(active - 1); }
    else if (event.key === "Escape") { if (!list.hidden) { event.preventDefault(); close(); } else { input.blur(); } }
    else if (event.key === "Enter" && active >= 0 && !list.hidden) {
      event.preventDefault();
      window.location.assign(options()[active].href);
    }
  });
  form.addEventListener("submit", function () {
    window.clearTimeout(timer);  // the results page is coming: no suggestions for it
    latest++;
  });
  input.addEventListener("blur", function () {
    window.setTimeout(function () { if (!list.contains(document.activeElement)) close(); }, 150);
  });
  list.addEventListener("mousedown", function (event) { event.preventDefault(); });
})();

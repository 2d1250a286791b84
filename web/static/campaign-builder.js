/* Northstar admin: the campaign builder's courtesy layer. Adds, removes and reorders steps, shows
   only the fields a step's kind uses, keeps the jump-target list and template preview links
   current, and gives branch and exit conditions the rules console's visual builder
   (rules-builder.js, loaded as is for each condition editor it should set up). Without this script
   the page is a plain form: a blank step slot, position numbers, remove boxes and raw JSON. */
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var target = event.target;
    if (target.matches && target.matches("form[data-confirm]") && !window.confirm(target.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });
  liveCounts(document.querySelector("[data-live-counts]"));
  var form = document.querySelector("form[data-campaign-form]");
  var list = document.querySelector("[data-steps]");
  if (!form || !list) return;
  document.documentElement.classList.add("js");
  var config = JSON.parse((document.getElementById("builder-config") || {}).textContent || "{}");
  var template = document.getElementById("step-template");
  var addButton = document.querySelector("[data-add-step]");
  var keyList = document.querySelector("[data-step-keys]");

  function steps() { return Array.prototype.slice.call(list.querySelectorAll("li[data-step]")); }
  function kindOf(li) { return li.querySelector("[data-kind-select]").value; }

  // -- the rules console's condition builder, one run per batch of new editors -----------------------
  var queue = [];
  var loading = false;
  function buildConditions(hosts) {
    hosts.forEach(function (host) {
      if (!host.hasAttribute("data-built") && queue.indexOf(host) === -1) queue.push(host);
    });
    if (loading || !queue.length || !config.rulesBuilder) return;
    var batch = queue.splice(0, queue.length);
    // Busy from now until the builder's first check has answered (it takes aria-busy over): the
    // status says a check is on its way while the script still loads.
    function statusOf(host) { return host.querySelector("[data-live-status]"); }
    batch.forEach(function (host) {
      host.setAttribute("data-rule-editor", "");
      host.setAttribute("data-built", "");
      if (statusOf(host)) statusOf(host).setAttribute("aria-busy", "true");
    });
    loading = true;
    var script = document.createElement("script");
    script.src = config.rulesBuilder;
    script.onload = script.onerror = function (event) {
      // The script sets up every form[data-rule-editor] it finds: take the mark off these so the
      // next run sets up only the editors added after it.
      batch.forEach(function (host) {
        host.removeAttribute("data-rule-editor");
        if (event.type === "error" && statusOf(host)) statusOf(host).removeAttribute("aria-busy");
      });
      script.remove();
      loading = false;
      buildConditions([]);
    };
    document.head.appendChild(script);
  }

  function conditionHost(li) { return li.querySelector("[data-condition-host]"); }

  // -- what each step shows ---------------------------------------------------------------------------
  function showFields(li) {
    var kind = kindOf(li);
    li.setAttribute("data-kind", kind);
    var waitSelect = li.querySelector("[data-wait-for]");
    var wait = waitSelect ? waitSelect.value : "";
    li.querySelectorAll(".s-fields > [data-kinds]").forEach(function (field) {
      var used = field.getAttribute("data-kinds").split(" ").indexOf(kind) !== -1;
      var modes = field.getAttribute("data-wait");
      if (used && modes) used = modes.split(" ").indexOf(wait) !== -1;
      field.hidden = !used;
    });
    var select = li.querySelector("[data-template-select]");
    if (select) {
      select.querySelectorAll("optgroup[data-for]").forEach(function (group) {
        group.disabled = group.getAttribute("data-for") !== kind;
        group.hidden = group.disabled;
      });
      updatePreview(li);
    }
    if (kind === "branch") buildConditions([conditionHost(li)]);
  }

  function updatePreview(li) {
    var select = li.querySelector("[data-template-select]");
    var link = li.querySelector("[data-preview]");
    if (!select || !link) return;
    link.hidden = !select.value;
    if (select.value) {
      var href = link.getAttribute("data-preview-base").replace("__key__", encodeURIComponent(select.value));
      // An email step's survey fills the template's survey.* in the preview, as it will in the send.
      var survey = li.querySelector("input[name$='-survey']");
      if (survey && kindOf(li) === "email" && survey.value.trim()) {
        href += "?survey=" + encodeURIComponent(survey.value.trim());
      }
      link.href = href;
      link.setAttribute("aria-label", "Preview template " + select.value);
    }
  }

  function renumber() {
    steps().forEach(function (li, i) {
      var n = String(i + 1);
      li.querySelector("[data-number]").textContent = n;
      li.querySelector("[data-legend]").textContent = "Step " + n;
      li.querySelector("[data-position]").value = n;
      li.querySelector("[data-move='-1']").disabled = i === 0;
      li.querySelector("[data-move='1']").disabled = i === steps().length - 1;
      li.querySelector("[data-move='-1']").setAttribute("aria-label", "Move step " + n + " up");
      li.querySelector("[data-move='1']").setAttribute("aria-label", "Move step " + n + " down");
      li.querySelector("[data-remove-step]").setAttribute("aria-label", "Remove step " + n);
    });
    refreshKeys();
  }

  function refreshKeys() {
    if (!keyList) return;
    keyList.textContent = "";
    steps().forEach(function (li) {
      var key = li.querySelector("[data-step-key]").value.trim();
      if (key) { var o = document.createElement("option"); o.value = key; keyList.appendChild(o); }
    });
    var exit = document.createElement("option"); exit.value = "exit"; keyList.appendChild(exit);
  }

  function enhance(li) {
    li.querySelectorAll("[data-move], [data-remove-step]").forEach(function (b) { b.hidden = false; });
    li.classList.remove("s-blank");
    showFields(li);
  }

  // -- add, move, remove --------------------------------------------------------------------------------
  var next = 0;
  steps().forEach(function (li) { next = Math.max(next, Number(li.getAttribute("data-index")) + 1); });

  function addStep(kind) {
    var index = String(next++);
    var fragment = template.content.cloneNode(true);
    fragment.querySelectorAll("*").forEach(function (node) {
      Array.prototype.slice.call(node.attributes).forEach(function (attr) {
        if (attr.value.indexOf("__i__") !== -1) node.setAttribute(attr.name, attr.value.split("__i__").join(index));
      });
    });
    var li = fragment.querySelector("li");
    list.appendChild(fragment);
    if (kind) li.querySelector("[data-kind-select]").value = kind;
    enhance(li);
    renumber();
    return li;
  }

  // A blank slot becomes a step like the others: its label and empty choice read as a step's.
  function adopt(li) {
    li.querySelector("label[for$='-kind']").textContent = "Kind";
    li.querySelector("[data-kind-select] option[value='']").textContent = "(choose)";
  }

  // The page can be used before this deferred script runs; what was done to the plain form then
  // stays done (the helpers are admin.js's, which the console loads before this script). A step
  // whose Remove box was ticked goes, as its ✕ would take it.
  var northstar = window.NorthstarConsole;
  northstar.removeTicked(steps());
  // Blank slots are how the plain form adds a step; with this script, "+ Add step" does. A blank
  // slot with a kind or a key typed in stays as a step; an untouched one goes, except that a
  // campaign with no steps keeps it as its first step, an email.
  var hasSteps = steps().some(function (li) { return !li.classList.contains("s-blank"); });
  steps().forEach(function (li) {
    if (!li.classList.contains("s-blank")) { enhance(li); return; }
    var touched = kindOf(li) || li.querySelector("[data-step-key]").value.trim();
    if (!touched && hasSteps) { li.remove(); return; }
    if (!hasSteps && !kindOf(li)) li.querySelector("[data-kind-select]").value = "email";
    adopt(li);
    enhance(li);
    hasSteps = true;
  });
  // Position numbers typed then move their steps as the server orders them (by number).
  northstar.applyTypedPositions(steps(), "sort");
  if (!steps().length) addStep("email");
  renumber();
  addButton.hidden = false;
  addButton.addEventListener("click", function () {
    var li = addStep("");
    li.querySelector("[data-kind-select]").focus();
  });

  list.addEventListener("click", function (event) {
    var move = event.target.closest("[data-move]");
    var remove = event.target.closest("[data-remove-step]");
    if (move) {
      var li = move.closest("li[data-step]");
      var down = move.getAttribute("data-move") === "1";
      var sibling = down ? li.nextElementSibling : li.previousElementSibling;
      if (!sibling) return;
      list.insertBefore(li, down ? sibling.nextElementSibling : sibling);
      renumber();
      move.focus();
    } else if (remove) {
      var gone = remove.closest("li[data-step]");
      var neighbour = gone.nextElementSibling || gone.previousElementSibling;
      gone.remove();
      renumber();
      (neighbour ? neighbour.querySelector("[data-kind-select]") : addButton).focus();
    }
  });
  list.addEventListener("change", function (event) {
    var li = event.target.closest("li[data-step]");
    if (!li) return;
    if (event.target.matches("[data-kind-select], [data-wait-for]")) showFields(li);
    if (event.target.matches("[data-template-select], input[name$='-survey']")) updatePreview(li);
  });
  list.addEventListener("input", function (event) {
    if (event.target.matches("[data-step-key]")) refreshKeys();
  });

  // After a refused save, the list of problems is where keyboard and screen reader users start.
  var summary = document.querySelector("[data-focus-on-load]");
  if (summary) summary.focus();

  // Enter inside a condition builder must not submit its (never submitted) host form.
  document.addEventListener("submit", function (event) {
    if (event.target.matches && event.target.matches("[data-condition-host]")) event.preventDefault();
  });

  // The optional exit condition: folded behind a button while empty.
  var exitHost = document.querySelector("[data-optional-condition]");
  if (exitHost) {
    var textarea = exitHost.querySelector("[data-condition]");
    if (textarea.value.trim() || textarea.hasAttribute("aria-invalid")) {
      buildConditions([exitHost]);
    } else {
      exitHost.hidden = true;
      var reveal = document.createElement("button");
      reveal.type = "button";
      reveal.className = "btn small secondary";
      reveal.textContent = "+ Add an exit condition";
      exitHost.parentNode.insertBefore(reveal, exitHost);
      reveal.addEventListener("click", function () {
        reveal.remove();
        exitHost.hidden = false;
        buildConditions([exitHost]);
      });
    }
  }

  // -- the detail page: counts refreshed in place every 20 s while the page is visible --------------
  function liveCounts(note) {
    if (!note || !window.fetch) return;
    var status = note.querySelector("[data-counts-status]");
    function format(n) { return Number(n || 0).toLocaleString("en-US"); }
    function refresh() {
      if (document.hidden) return;
      fetch(note.getAttribute("data-live-counts"), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (body) {
          if (!body) return;
          var current = body.versions.filter(function (v) { return v.current; })[0];
          if (!current) return;
          current.steps.forEach(function (step) {
            var here = document.querySelector("ol.flow li[data-step='" + step.key + "'] [data-here]");
            if (!here) return;
            var n = (step.by_state.active || 0) + (step.by_state.waiting || 0);
            here.textContent = format(n);
            here.parentNode.classList.toggle("has", n > 0);
          });
          document.querySelectorAll("[data-total]").forEach(function (cell) {
            cell.textContent = format(current.by_state[cell.getAttribute("data-total")]);
          });
          status.textContent = "Updated " + new Date().toLocaleTimeString() + ".";
        })
        .catch(function () { status.textContent = "Could not refresh just now; reload for the latest."; });
    }
    window.setInterval(refresh, 20000);
  }
})();

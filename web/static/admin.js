/* Northstar admin: progressive enhancement of the survey editor (add, remove, reorder questions;
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

  function setUp(form) {
    var list = form.querySelector("[data-questions]");
    var template = document.getElementById("question-template");
    var addButton = form.querySelector("[data-add-question]");
    if (!list || !template || !addButton) return;

    var filled = questions(list).filter(function (f) { return !f.classList.contains("q-blank"); });
    questions(list).forEach(function (fieldset, i) {
      // Keep one empty slot only when the survey has no questions yet.
      if (!fieldset.classList.contains("q-blank")) return;
      if (filled.length > 0 || i > 0) {
        fieldset.remove();
      } else {
        fieldset.classList.remove("q-blank");
        fieldset.querySelector("[data-label]").textContent = "New question";
      }
    });
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

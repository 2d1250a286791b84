/* Northstar admin, plan page: a Copy button for the share link. Without this script the link is a
   read-only field the user selects and copies by hand. */
(function () {
  "use strict";
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var input = document.getElementById(button.getAttribute("data-copy"));
    var status = document.querySelector("[data-copy-status]");
    if (!input) return;
    button.hidden = false;
    input.addEventListener("focus", function () { input.select(); });
    button.addEventListener("click", function () {
      function done(message) { if (status) status.textContent = message; }
      input.select();
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(
          function () { done("Copied to the clipboard."); },
          function () { done("Press Ctrl+C (⌘C) to copy the selected link."); }
        );
      } else {
        done(document.execCommand && document.execCommand("copy")
          ? "Copied to the clipboard." : "Press Ctrl+C (⌘C) to copy the selected link.");
      }
    });
  });
})();

/* The shared plan page without JavaScript works the same; this only adds the print button. */
(function () {
  var button = document.querySelector("[data-print]");
  if (!button || !window.print) return;
  button.hidden = false;
  button.addEventListener("click", function () { window.print(); });
})();

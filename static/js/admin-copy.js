/* Admin: a button with data-copy="<element id>" copies that element's text (the heartbeat's
   curl lines on a health check). A file, not an inline script: the Content-Security-Policy
   runs scripts from this origin only. */
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.getElementById(button.dataset.copy);
    if (!source) return;
    window.getSelection().selectAllChildren(source);
    if (navigator.clipboard) {
      navigator.clipboard.writeText(source.textContent).then(function () {
        button.textContent = "Copied";
      });
    }
  });
})();

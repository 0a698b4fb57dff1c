/* Admin: a button with data-add-row="<formset prefix>" adds an empty row to that formset's
   table from its <template id="<prefix>-empty-row"> (the formset's empty_form), numbering it
   and counting it in the management form, up to the formset's maximum. Without JavaScript
   the button stays hidden and saving brings more empty rows. A file, not an inline script:
   the Content-Security-Policy runs scripts from this origin only. */
(function () {
  "use strict";
  function field(prefix, name) {
    return document.getElementById("id_" + prefix + "-" + name);
  }
  function refresh(button) {
    var prefix = button.dataset.addRow;
    var total = parseInt(field(prefix, "TOTAL_FORMS").value, 10);
    var most = parseInt(field(prefix, "MAX_NUM_FORMS").value, 10);
    button.disabled = total >= most;
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-add-row]").forEach(function (button) {
      button.hidden = false;
      refresh(button);
    });
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-add-row]");
    if (!button) return;
    var prefix = button.dataset.addRow;
    var template = document.getElementById(prefix + "-empty-row");
    var total = field(prefix, "TOTAL_FORMS");
    var index = parseInt(total.value, 10);
    if (!template || index >= parseInt(field(prefix, "MAX_NUM_FORMS").value, 10)) return;
    var html = template.innerHTML.replace(/__prefix__/g, String(index));
    var body = document.getElementById(prefix + "-rows");
    body.insertAdjacentHTML("beforeend", html);
    total.value = String(index + 1);
    var row = body.lastElementChild;
    if (window.DateTimeShortcuts) {
      row.querySelectorAll("input.vDateField").forEach(function (input) {
        window.DateTimeShortcuts.addCalendar(input);
      });
      row.querySelectorAll("input.vTimeField").forEach(function (input) {
        window.DateTimeShortcuts.addClock(input);
      });
    }
    var first = row.querySelector("input:not([type=hidden]), textarea");
    if (first) first.focus();
    refresh(button);
  });
})();

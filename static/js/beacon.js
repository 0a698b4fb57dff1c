/* Beacon public pages: local times, live refresh niceties, keyboard along uptime bars.
 * No dependencies. Everything here is an enhancement: the server-rendered page is complete. */
(function () {
  "use strict";

  var FORMATS = {
    datetime: { month: "short", day: "numeric", year: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short" },
    time: { hour: "2-digit", minute: "2-digit", timeZoneName: "short" },
    date: { month: "short", day: "numeric", year: "numeric" },
    day: { month: "short", day: "numeric" }
  };
  var FULL = { dateStyle: "full", timeStyle: "long" };
  var formatters = {};
  /* The page's language (its prefix's), not the browser's: a visitor who chose /ja/ reads
     Japanese dates whatever their browser is set to. Unknown to Intl: the browser's. */
  var LOCALES = document.documentElement.lang ? [document.documentElement.lang] : undefined;

  function formatter(style) {
    if (!formatters[style]) {
      try {
        formatters[style] = new Intl.DateTimeFormat(LOCALES, style === "full" ? FULL : FORMATS[style]);
      } catch (e) {
        formatters[style] = null;
      }
    }
    return formatters[style];
  }

  /* Show every server time in the visitor's zone; the datetime attribute is UTC. */
  function localiseTimes(root) {
    var times = (root || document).querySelectorAll("time[datetime][data-format]");
    for (var i = 0; i < times.length; i++) {
      var el = times[i];
      var style = el.getAttribute("data-format");
      var when = new Date(el.getAttribute("datetime"));
      var fmt = formatter(style);
      if (!fmt || isNaN(when.getTime())) continue;
      el.textContent = fmt.format(when);
      var full = formatter("full");
      if (full) el.title = full.format(when);
    }
  }

  var relative = window.Intl && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat(LOCALES, { numeric: "auto" }) : null;

  function ago(date, justNow) {
    var seconds = Math.round((date.getTime() - Date.now()) / 1000);
    if (!relative) return "";
    if (Math.abs(seconds) < 60) return justNow || "just now";
    var minutes = Math.round(seconds / 60);
    if (Math.abs(minutes) < 60) return relative.format(minutes, "minute");
    var hours = Math.round(minutes / 60);
    if (Math.abs(hours) < 24) return relative.format(hours, "hour");
    return relative.format(Math.round(hours / 24), "day");
  }

  /* "Last updated <time> (5 minutes ago)": the relative part is refreshed every 15 s. */
  function refreshLastUpdated() {
    var holders = document.querySelectorAll("[data-last-updated]");
    for (var i = 0; i < holders.length; i++) {
      var time = holders[i].querySelector("time[datetime]");
      if (!time) continue;
      var label = holders[i].querySelector(".ago");
      if (!label) {
        label = document.createElement("span");
        label.className = "ago";
        holders[i].appendChild(label);
      }
      var text = ago(new Date(time.getAttribute("datetime")), holders[i].getAttribute("data-just-now"));
      label.textContent = text ? " (" + text + ")" : "";
    }
  }

  /* Uptime bars: one tab stop per bar (today), arrow keys move between days. */
  function moveTabStop(bar, cell) {
    var current = bar.querySelector('[tabindex="0"]');
    if (current && current !== cell) current.setAttribute("tabindex", "-1");
    cell.setAttribute("tabindex", "0");
  }

  function onBarKey(event) {
    var cell = event.target;
    var bar = cell && cell.parentNode;
    if (cell.tagName !== "LI" || !bar || !bar.classList || !bar.classList.contains("bar")) return;
    var cells = Array.prototype.filter.call(bar.children, function (li) {
      return li.offsetParent !== null; // skip the days hidden on narrow screens
    });
    var index = cells.indexOf(cell);
    var next = null;
    if (event.key === "ArrowLeft") next = cells[index - 1];
    else if (event.key === "ArrowRight") next = cells[index + 1];
    else if (event.key === "Home") next = cells[0];
    else if (event.key === "End") next = cells[cells.length - 1];
    if (!next) return;
    event.preventDefault();
    moveTabStop(bar, next);
    next.focus();
  }

  /* Live refresh keeps what the visitor did: groups they opened or closed, and focus. */
  var userGroups = {};
  var pendingFocus = null;

  function onToggle(event) {
    var details = event.target;
    if (details.tagName === "DETAILS" && details.id && details.dataset.restoring !== "1") {
      userGroups[details.id] = details.open;
    }
  }

  var FOCUSABLE = "a[href], button, summary, [tabindex]";

  function focusKey(el) {
    var body = document.getElementById("status-body");
    if (!el || !body || !body.contains(el)) return null;
    if (el.id) return { id: el.id };
    var bar = el.parentNode;
    if (bar && bar.classList && bar.classList.contains("bar")) {
      return {
        bar: Array.prototype.indexOf.call(body.querySelectorAll(".bar"), bar),
        cell: Array.prototype.indexOf.call(bar.children, el)
      };
    }
    return { index: Array.prototype.indexOf.call(body.querySelectorAll(FOCUSABLE), el) };
  }

  function findByKey(root, key) {
    if (key.id) return document.getElementById(key.id);
    if (key.bar >= 0) {
      var bar = root.querySelectorAll(".bar")[key.bar];
      var cell = bar && bar.children[key.cell];
      if (cell) moveTabStop(bar, cell);
      return cell;
    }
    return key.index >= 0 ? root.querySelectorAll(FOCUSABLE)[key.index] : null;
  }

  function restore(root) {
    for (var id in userGroups) {
      var details = document.getElementById(id);
      if (details && details.open !== userGroups[id]) {
        details.dataset.restoring = "1";
        details.open = userGroups[id];
        setTimeout(function (d) { delete d.dataset.restoring; }.bind(null, details), 0);
      }
    }
    if (pendingFocus && root) {
      var target = findByKey(root, pendingFocus);
      if (target && target.focus) target.focus({ preventScroll: true });
    }
    pendingFocus = null;
  }

  /* Every day is focusable (a tap or click shows its tooltip); only one per bar is a tab stop. */
  function makeDaysFocusable(root) {
    var cells = (root || document).querySelectorAll(".bar > li:not([tabindex])");
    for (var i = 0; i < cells.length; i++) cells[i].setAttribute("tabindex", "-1");
  }

  function enhance(root) {
    makeDaysFocusable(root);
    localiseTimes(root);
    refreshLastUpdated();
  }

  document.addEventListener("keydown", onBarKey);
  document.addEventListener("toggle", onToggle, true);
  /* The response-time range a visitor picked (24 h / 7 d / 30 d) survives the refresh. */
  var pickedRanges = [];

  /* Live refresh only while the tab is visible. In this script, not in an hx-trigger filter:
     htmx evaluates those with Function(), which the Content-Security-Policy forbids. */
  document.addEventListener("htmx:beforeRequest", function (event) {
    var live = event.detail && event.detail.elt;
    if (live && live.classList && live.classList.contains("live") &&
        document.visibilityState !== "visible") {
      event.preventDefault();
    }
  });
  document.addEventListener("htmx:beforeSwap", function () {
    pendingFocus = focusKey(document.activeElement);
    pickedRanges = Array.prototype.map.call(
      document.querySelectorAll("input.range-input:checked"), function (input) { return input.id; }
    );
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    var root = document.getElementById("status-body") || event.target;
    for (var i = 0; i < pickedRanges.length; i++) {
      var input = document.getElementById(pickedRanges[i]);
      if (input) input.checked = true;
    }
    restore(root);
    enhance(root);
  });
  document.addEventListener("htmx:load", function (event) {
    enhance(event.target);
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { enhance(document); });
  } else {
    enhance(document);
  }
  setInterval(refreshLastUpdated, 15000);
})();

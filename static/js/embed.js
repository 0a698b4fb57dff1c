/*!
 * Beacon status notice. Add to any site:
 *   <script src="https://status.example.com/embed.js" async></script>
 * Optional: data-position="bottom-left" (default bottom-right).
 *
 * While an incident is unresolved or a maintenance is in progress, shows a small notice
 * linking to the status page. No dependencies, no cookies, no innerHTML with API data;
 * its styles live in a shadow root so the host page and the notice leave each other alone.
 */
(function () {
  "use strict";

  var POLL_MS = 60000;
  var IMPACT_RANK = { none: 0, maintenance: 1, minor: 2, major: 3, critical: 4 };
  /* The notice's words in the page's language: the server writes this line when it serves
     the script (statuspage/public/badges.py, embed_words); the file holds the English. */
  var WORDS = {"investigating": "Investigating", "identified": "Identified", "monitoring": "Monitoring", "in_progress": "Maintenance in progress", "verifying": "Verifying", "view_status_page": "View status page", "view_status_page_of": "View status page of %(name)s", "dismiss": "Dismiss", "service_disruption": "Service disruption", "one_more": "and 1 more", "more": "and %(count)s more"};

  function ownScript() {
    if (document.currentScript && document.currentScript.src) return document.currentScript;
    var scripts = document.getElementsByTagName("script");
    for (var i = scripts.length - 1; i >= 0; i--) {
      if (/\/embed\.js(?:[?#].*)?$/.test(scripts[i].src || "")) return scripts[i];
    }
    return null;
  }

  var script = ownScript();
  if (!script || !window.fetch || !document.documentElement.attachShadow) return;
  var origin;
  try {
    origin = new URL(script.src, document.baseURI).origin;
  } catch (e) {
    return;
  }
  var registry = (window.__beaconEmbeds = window.__beaconEmbeds || {});
  if (registry[origin]) return;
  registry[origin] = true;

  var summaryUrl = origin + "/api/v2/summary.json";
  var storageKey = "beacon-embed:dismissed:" + origin;
  var side = script.getAttribute("data-position") === "bottom-left" ? "left" : "right";

  var CSS = [
    ":host { all: initial !important; display: block !important; }",
    ".bcn-notice { all: initial; position: fixed; bottom: 16px; " + side + ": 16px;",
    "  z-index: 2147483000; box-sizing: border-box; width: 340px;",
    "  max-width: calc(100vw - 32px); max-height: calc(100vh - 32px); overflow: auto;",
    "  display: flex; gap: 10px; align-items: flex-start; padding: 12px 12px 12px 14px;",
    "  background: #ffffff; color: #1f2328; border: 1px solid #d1d9e0;",
    "  border-left: 6px solid var(--bcn-tone); border-radius: 8px;",
    "  box-shadow: 0 4px 16px rgb(31 35 40 / 0.18);",
    "  font: 14px/1.4 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif;",
    "  text-align: left; direction: ltr; overflow-wrap: anywhere; }",
    ".bcn-notice[hidden] { display: none; }",
    ".bcn-notice * { all: unset; box-sizing: border-box; font: inherit; color: inherit; }",
    ".bcn-body { display: block; flex: 1 1 auto; min-width: 0; }",
    ".bcn-title { display: block; font-weight: 600; }",
    ".bcn-status { display: block; margin-top: 2px; color: var(--bcn-tone-text); font-size: 13px; }",
    ".bcn-more { display: block; margin-top: 2px; color: #59636e; font-size: 13px; }",
    ".bcn-more:empty { display: none; }",
    ".bcn-link { display: inline-block; margin-top: 6px; color: #0969da; text-decoration: underline;",
    "  cursor: pointer; font-size: 13px; }",
    ".bcn-dismiss { display: block; flex: none; width: 28px; height: 28px; margin: -4px -4px 0 0;",
    "  border-radius: 6px; cursor: pointer; text-align: center; line-height: 28px;",
    "  font-size: 20px; color: #59636e; background: transparent; }",
    ".bcn-dismiss:hover { background: #eff2f5; color: #1f2328; }",
    ".bcn-link:focus-visible, .bcn-dismiss:focus-visible { outline: 3px solid #0969da;",
    "  outline-offset: 2px; }",
    ".bcn-tone-none, .bcn-tone-minor { --bcn-tone: #d4a72c; --bcn-tone-text: #8a6100; }",
    ".bcn-tone-major { --bcn-tone: #bc4c00; --bcn-tone-text: #bc4c00; }",
    ".bcn-tone-critical { --bcn-tone: #cf222e; --bcn-tone-text: #cf222e; }",
    ".bcn-tone-maintenance { --bcn-tone: #0969da; --bcn-tone-text: #0969da; }",
    "@media (prefers-color-scheme: dark) {",
    "  .bcn-notice { background: #161b22; color: #e6edf3; border-color: #3d444d;",
    "    border-left-color: var(--bcn-tone); box-shadow: none; }",
    "  .bcn-more, .bcn-dismiss { color: #9198a1; }",
    "  .bcn-dismiss:hover { background: #21262d; color: #e6edf3; }",
    "  .bcn-link { color: #58a6ff; }",
    "  .bcn-tone-none, .bcn-tone-minor { --bcn-tone-text: #d29922; }",
    "  .bcn-tone-major { --bcn-tone-text: #f0883e; }",
    "  .bcn-tone-critical { --bcn-tone-text: #ff7b72; }",
    "  .bcn-tone-maintenance { --bcn-tone-text: #58a6ff; }",
    "}",
    "@media print { .bcn-notice { display: none; } }",
  ].join("\n");

  var ui = null;
  var active = [];
  var lastCheck = 0;

  function readDismissed() {
    try {
      var ids = JSON.parse(window.localStorage.getItem(storageKey) || "[]");
      return Array.isArray(ids) ? ids : [];
    } catch (e) {
      return [];
    }
  }

  function writeDismissed(ids) {
    try {
      if (ids.length) window.localStorage.setItem(storageKey, JSON.stringify(ids));
      else window.localStorage.removeItem(storageKey);
    } catch (e) {
      /* storage blocked: the notice simply comes back on the next load */
    }
  }

  function text(value) {
    return typeof value === "string" ? value : "";
  }

  function isHttpUrl(value) {
    try {
      var url = new URL(value);
      return url.protocol === "https:" || url.protocol === "http:";
    } catch (e) {
      return false;
    }
  }

  /* Unresolved incidents, then maintenances in progress; the most severe first. */
  function activeItems(summary) {
    var items = [];
    var incidents = Array.isArray(summary.incidents) ? summary.incidents : [];
    var maintenances = Array.isArray(summary.scheduled_maintenances)
      ? summary.scheduled_maintenances
      : [];
    incidents.forEach(function (incident) {
      if (incident && incident.id && !/^(resolved|postmortem)$/.test(incident.status)) {
        items.push({ incident: incident, impact: incident.impact, order: 0 });
      }
    });
    maintenances.forEach(function (maintenance) {
      if (maintenance && maintenance.id && /^(in_progress|verifying)$/.test(maintenance.status)) {
        items.push({ incident: maintenance, impact: "maintenance", order: 1 });
      }
    });
    items.sort(function (a, b) {
      return a.order - b.order || (IMPACT_RANK[b.impact] || 0) - (IMPACT_RANK[a.impact] || 0);
    });
    return items;
  }

  function currentStatus(incident) {
    var updates = Array.isArray(incident.incident_updates) ? incident.incident_updates : [];
    var status = incident.status || (updates[0] && updates[0].status);
    var known = /^(investigating|identified|monitoring|in_progress|verifying)$/.test(status);
    return known ? WORDS[status] : text(status).replace(/_/g, " ");
  }

  function el(tag, className) {
    var node = document.createElement(tag);
    node.className = className;
    return node;
  }

  /* A constructed stylesheet where the browser has them: a host page whose own
     Content-Security-Policy forbids inline <style> (no 'unsafe-inline') still shows the
     notice styled. Older browsers get a <style> element. */
  function addStyles(root) {
    try {
      if (root.adoptedStyleSheets !== undefined && window.CSSStyleSheet) {
        var sheet = new CSSStyleSheet();
        sheet.replaceSync(CSS);
        root.adoptedStyleSheets = [sheet];
        return;
      }
    } catch (e) {
      /* fall through to the element */
    }
    var style = document.createElement("style");
    style.textContent = CSS;
    root.appendChild(style);
  }

  function build() {
    var host = document.createElement("div");
    host.setAttribute("data-beacon-embed", origin);
    var root = host.attachShadow({ mode: "open" });
    var notice = el("div", "bcn-notice");
    notice.setAttribute("role", "status");
    notice.setAttribute("aria-live", "polite");
    notice.hidden = true;
    var body = el("div", "bcn-body");
    var title = el("span", "bcn-title");
    var status = el("span", "bcn-status");
    var more = el("span", "bcn-more");
    var link = el("a", "bcn-link");
    link.target = "_blank";
    link.rel = "noopener";
    link.textContent = WORDS.view_status_page;
    var dismiss = el("button", "bcn-dismiss");
    dismiss.type = "button";
    dismiss.setAttribute("aria-label", WORDS.dismiss);
    dismiss.textContent = "\u00d7";
    dismiss.addEventListener("click", function () {
      writeDismissed(
        active.map(function (item) {
          return item.incident.id;
        })
      );
      notice.hidden = true;
    });
    body.appendChild(title);
    body.appendChild(status);
    body.appendChild(more);
    body.appendChild(link);
    notice.appendChild(body);
    notice.appendChild(dismiss);
    addStyles(root);
    root.appendChild(notice);
    (document.body || document.documentElement).appendChild(host);
    return { notice: notice, title: title, status: status, more: more, link: link };
  }

  function render(summary) {
    active = activeItems(summary);
    var activeIds = active.map(function (item) {
      return item.incident.id;
    });
    var dismissed = readDismissed();
    var stillDismissed = dismissed.filter(function (id) {
      return activeIds.indexOf(id) !== -1;
    });
    if (stillDismissed.length !== dismissed.length) writeDismissed(stillDismissed);
    var shown = active.filter(function (item) {
      return stillDismissed.indexOf(item.incident.id) === -1;
    });
    if (!shown.length) {
      if (ui) ui.notice.hidden = true;
      return;
    }
    if (!ui) ui = build();
    var first = shown[0].incident;
    var page = summary.page || {};
    var href = [first.shortlink, page.url, origin].filter(isHttpUrl)[0];
    var tone = IMPACT_RANK[shown[0].impact] !== undefined ? shown[0].impact : "minor";
    ui.notice.className = "bcn-notice bcn-tone-" + tone;
    ui.title.textContent = text(first.name) || WORDS.service_disruption;
    ui.status.textContent = currentStatus(first);
    var others = shown.length - 1;
    ui.more.textContent =
      others === 1 ? WORDS.one_more : others > 1 ? WORDS.more.replace("%(count)s", others) : "";
    ui.link.href = href;
    ui.link.setAttribute(
      "aria-label",
      text(page.name)
        ? WORDS.view_status_page_of.replace("%(name)s", function () {
            return text(page.name);
          })
        : WORDS.view_status_page
    );
    ui.notice.hidden = false;
  }

  function check() {
    lastCheck = Date.now();
    window
      .fetch(summaryUrl, { mode: "cors", credentials: "omit", cache: "no-cache" })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (summary) {
        if (summary && typeof summary === "object") render(summary);
      })
      .catch(function () {
        /* unreachable or unreadable: leave the host page as it is */
      });
  }

  function checkIfVisible() {
    if (document.visibilityState !== "hidden") check();
  }

  check();
  window.setInterval(checkIfVisible, POLL_MS);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && Date.now() - lastCheck >= POLL_MS) check();
  });
})();

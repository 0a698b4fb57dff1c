/* Beacon's service worker, served at /sw.js (scope: the whole page). It only shows the
 * status page's push notifications and opens the page when one is clicked: it caches
 * nothing and intercepts no request. */
"use strict";

self.addEventListener("push", function (event) {
  var data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (e) {
    data = {};
  }
  var options = { body: data.body || "", data: { url: data.url || "/" } };
  if (data.tag) {
    // A later update of the same incident replaces the earlier notification, and says so.
    options.tag = data.tag;
    options.renotify = true;
  }
  event.waitUntil(self.registration.showNotification(data.title || self.location.host, options));
});

function pageUrl(notification) {
  var url;
  try {
    url = new URL((notification.data && notification.data.url) || "/", self.location.origin);
  } catch (e) {
    url = new URL("/", self.location.origin);
  }
  return url.protocol === "https:" || url.protocol === "http:" ? url : new URL("/", self.location.origin);
}

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var target = pageUrl(event.notification);
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (windows) {
      for (var i = 0; i < windows.length; i++) {
        if (windows[i].url === target.href && "focus" in windows[i]) return windows[i].focus();
      }
      for (var j = 0; j < windows.length; j++) {
        var client = windows[j];
        if (new URL(client.url).origin === target.origin && "navigate" in client) {
          return client.navigate(target.href).then(function (opened) {
            return opened ? opened.focus() : self.clients.openWindow(target.href);
          });
        }
      }
      return self.clients.openWindow(target.href);
    })
  );
});

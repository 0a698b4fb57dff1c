/* Beacon's service worker, served at /sw.js (scope: the whole page). It shows the status
 * page's push notifications, opens the page when one is clicked, and tells the page when the
 * browser renews its subscription: it caches nothing and intercepts no request. */
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

function renewedSubscription(event) {
  if (event.newSubscription) return Promise.resolve(event.newSubscription);
  var options = event.oldSubscription && event.oldSubscription.options;
  if (options && options.applicationServerKey) {
    return self.registration.pushManager.subscribe({
      userVisibleOnly: true,
      applicationServerKey: options.applicationServerKey
    });
  }
  return fetch(new URL("push/key/", self.registration.scope), { credentials: "same-origin" })
    .then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    })
    .then(function (key) {
      return self.registration.pushManager.subscribe({
        userVisibleOnly: true,
        // The base64url text as served: PushManager decodes it itself.
        applicationServerKey: key.public_key
      });
    });
}

// The browser renewed the subscription (or dropped it): the old endpoint will answer 410.
// The old endpoint and auth secret prove to the page that this is the browser that subscribed,
// so it moves that subscription, with the components chosen, to the new one.
function resubscribe(event) {
  var old = event.oldSubscription && event.oldSubscription.toJSON();
  if (!old || !old.endpoint || !old.keys || !old.keys.auth) return Promise.resolve();
  return renewedSubscription(event).then(function (renewed) {
    var body = renewed.toJSON();
    body.replaces = { endpoint: old.endpoint, auth: old.keys.auth };
    return fetch(new URL("push/resubscribe/", self.registration.scope), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body)
    });
  });
}

self.addEventListener("pushsubscriptionchange", function (event) {
  event.waitUntil(resubscribe(event));
});

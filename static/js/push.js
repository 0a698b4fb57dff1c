/* "Notify me in this browser" on the status page (templates/subscriptions/_push_control.html).
 * The control stays hidden unless this browser can take push notifications; the page works
 * without it. It registers the service worker (/sw.js), asks for permission, subscribes with
 * the page's VAPID key and posts the subscription and the ticked components. */
(function () {
  "use strict";

  var control = document.querySelector("[data-push]");
  if (!control) return;

  function supported() {
    return (
      window.isSecureContext &&
      "serviceWorker" in navigator &&
      "PushManager" in window &&
      "Notification" in window &&
      "showNotification" in ServiceWorkerRegistration.prototype
    );
  }
  if (!supported()) return;

  var form = control.querySelector("[data-push-form]");
  var onButton = control.querySelector("[data-push-on]");
  var offButton = control.querySelector("[data-push-off]");
  var status = control.querySelector("[data-push-status]");
  var state = control.querySelector("[data-push-state]");

  function message(name) {
    var holder = control.querySelector('[data-push-message="' + name + '"]');
    return holder ? holder.textContent : "";
  }

  function say(name) {
    status.textContent = name ? message(name) : "";
  }

  function show(subscribed) {
    control.setAttribute("data-push-subscribed", subscribed ? "true" : "false");
    state.textContent = message(subscribed ? "on-state" : "off-state");
    offButton.hidden = !subscribed;
  }

  function keyBytes(base64url) {
    var base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    base64 += "====".slice(base64.length % 4 || 4);
    var raw = atob(base64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes;
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body)
    }).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    });
  }

  function chosen() {
    var boxes = form.querySelectorAll('input[name="components"]:checked');
    var ids = [];
    for (var i = 0; i < boxes.length; i++) ids.push(boxes[i].value);
    return ids;
  }

  var registration = navigator.serviceWorker.register(control.getAttribute("data-worker"), { scope: "/" });

  function subscription() {
    return registration.then(function (reg) {
      return reg.pushManager.getSubscription();
    });
  }

  function turnOn() {
    say("working");
    return Notification.requestPermission()
      .then(function (permission) {
        if (permission !== "granted") throw new Error(permission);
        return fetch(control.getAttribute("data-key"), { credentials: "same-origin" });
      })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (key) {
        return registration.then(function (reg) {
          return reg.pushManager.getSubscription().then(function (existing) {
            return (
              existing ||
              reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key.public_key) })
            );
          });
        });
      })
      .then(function (sub) {
        var body = sub.toJSON();
        body.components = chosen();
        return post(control.getAttribute("data-subscribe"), body);
      })
      .then(function () {
        show(true);
        say("on");
      })
      .catch(function (error) {
        say(Notification.permission === "denied" || (error && error.message === "denied") ? "denied" : "failed");
      });
  }

  function turnOff() {
    say("working");
    return subscription()
      .then(function (sub) {
        if (!sub) return null;
        var body = sub.toJSON();
        // Removed here even if the server cannot be told: the push service then answers
        // 410 and the server forgets the subscription at the next notification.
        return sub.unsubscribe().then(function () {
          return post(control.getAttribute("data-unsubscribe"), { endpoint: body.endpoint, keys: { auth: body.keys.auth } }).catch(function () {});
        });
      })
      .then(function () {
        show(false);
        say("off");
      })
      .catch(function () {
        say("failed");
      });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    turnOn();
  });
  offButton.addEventListener("click", turnOff);

  control.hidden = false;
  subscription()
    .then(function (sub) {
      show(!!sub);
    })
    .catch(function () {
      show(false);
    });
})();

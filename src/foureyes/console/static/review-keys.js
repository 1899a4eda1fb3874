// Keyboard flow for reviewers (no libraries, no build step). On the inbox and a request's page:
//   j / k   move to the next / previous request card (inbox)
//   a       get ready to approve: focuses the handle to type (destructive actions) or the
//           Approve button; Enter then approves
//   d       get ready to deny: focuses the Deny button; Enter then denies
//   o       open the current card's request page (inbox)
//   n       back to the inbox (a request's page)
// A key never submits by itself: Enter on the focused button does, as a click would, so the
// security key's step-up (webauthn.js, on the form's submit) is asked exactly as with the mouse.
// Keys typed into a field, or with a modifier, are left alone.
(function () {
  "use strict";

  var current = 0;

  function cards() {
    return Array.prototype.slice.call(document.querySelectorAll("article.inbox-item"));
  }

  function scope() {
    var list = cards();
    if (list.length) return list[Math.min(current, list.length - 1)];
    return document;
  }

  function say(text) {
    var live = document.getElementById("keys-live");
    if (!live) {
      live = document.createElement("p");
      live.id = "keys-live";
      live.className = "visually-hidden";
      live.setAttribute("role", "status");
      document.body.appendChild(live);
    }
    live.textContent = text;
  }

  function move(step) {
    var list = cards();
    if (!list.length) return;
    current = Math.max(0, Math.min(list.length - 1, current + step));
    list.forEach(function (card, i) { card.classList.toggle("current", i === current); });
    list[current].focus();
    list[current].scrollIntoView({ block: "start" });
  }

  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  function ready(decision) {
    var form = scope().querySelector("form.review-form");
    if (!form) return;
    if (decision === "approve") {
      var handle = form.querySelector('input[name="confirm_handle"]');
      if (handle && !handle.value) {
        handle.focus();
        say("Type the account's handle, then press Enter to approve.");
        return;
      }
    }
    var button = form.querySelector('button[data-decision="' + decision + '"]');
    if (button) {
      button.focus();
      say("Press Enter to " + decision + ".");
    }
  }

  function onKey(event) {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
    if (typing(event.target)) return;
    var key = event.key;
    if (key === "j") move(1);
    else if (key === "k") move(-1);
    else if (key === "a") ready("approve");
    else if (key === "d") ready("deny");
    else if (key === "o") {
      var link = scope().querySelector("h2 a");
      if (link) window.location.href = link.getAttribute("href");
    } else if (key === "n") {
      var next = document.querySelector("a[data-next]");
      if (next) window.location.href = next.getAttribute("href");
    } else return;
    event.preventDefault();
  }

  function start() {
    document.addEventListener("keydown", onKey);
    if (cards().length && new URLSearchParams(window.location.search).has("reviewed")) move(0);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

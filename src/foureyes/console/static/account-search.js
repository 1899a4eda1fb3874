// Typeahead for the account search (no libraries): as the handle is typed, asks the server
// (/console/account-suggestions, the same search as the page) and lists the accounts found
// under the box as links. Without JavaScript the form's submit lists them just the same.
(function () {
  "use strict";

  function start() {
    var form = document.querySelector("form[data-typeahead]");
    if (!form) return;
    var input = form.querySelector('input[name="q"]');
    var list = document.getElementById("q-suggestions");
    var asked = 0;
    var timer = null;

    function show(items) {
      list.textContent = "";
      items.forEach(function (ref) {
        var item = document.createElement("li");
        var link = document.createElement("a");
        link.href = "/console/accounts/" + ref;
        link.textContent = ref;
        item.appendChild(link);
        list.appendChild(item);
      });
      list.hidden = items.length === 0;
    }

    async function ask(text) {
      var mine = ++asked;
      try {
        var response = await fetch("/console/account-suggestions?q=" + encodeURIComponent(text), {
          credentials: "same-origin",
          headers: { "Accept": "application/json" },
        });
        if (response.status === 429 && mine === asked) {
          // The per-person search limit (workflow/account_search.py): say so, list nothing.
          var wait = parseInt(response.headers.get("Retry-After") || "0", 10);
          list.textContent = "";
          var note = document.createElement("li");
          note.setAttribute("role", "status");
          note.textContent = "Too many account searches: try again in " +
            (wait >= 90 ? Math.ceil(wait / 60) + " minutes" : wait + " seconds") + ".";
          list.appendChild(note);
          list.hidden = false;
          return;
        }
        if (!response.ok || mine !== asked) return;
        var data = await response.json();
        if (mine === asked) show(data.items || []);
      } catch (e) {
        show([]);
      }
    }

    input.addEventListener("input", function () {
      var text = input.value.trim();
      clearTimeout(timer);
      if (text.replace(/^@/, "").length < 2) { show([]); return; }
      timer = setTimeout(function () { ask(text); }, 150);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

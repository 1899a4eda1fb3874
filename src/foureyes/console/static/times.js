// Relative times that keep counting ("runs in 8 min" becomes "runs in 7 min"), from the
// server's clock (meta server-now: the page was rendered then), never the browser's, which may
// be wrong or in another zone. Each <time datetime> keeps its absolute time in its title.
(function () {
  "use strict";

  var meta = document.querySelector('meta[name="server-now"]');
  if (!meta) return;
  var serverNow = Date.parse(meta.getAttribute("content"));
  var loaded = Date.now();
  if (isNaN(serverNow)) return;

  function span(ms) {
    var s = Math.floor(Math.abs(ms) / 1000);
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    var m = Math.floor((s % 3600) / 60);
    if (d) return h ? d + " d " + h + " h" : d + " d";
    if (h) return m ? h + " h " + m + " min" : h + " h";
    if (m) return m + " min";
    return (s % 60) + " s";
  }

  function tick() {
    var now = serverNow + (Date.now() - loaded);
    document.querySelectorAll("time[datetime][data-relative]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("datetime"));
      if (isNaN(at)) return;
      var delta = at - now;
      el.textContent = Math.abs(delta) < 1000 ? "now" : delta > 0 ? "in " + span(delta) : span(delta) + " ago";
    });
  }

  setInterval(tick, 30000);
})();

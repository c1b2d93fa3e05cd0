// Refreshes the live view in place every data-refresh seconds while the page
// is visible. Without it the page works the same: the Refresh link reloads.
(function () {
  "use strict";
  var section = document.getElementById("live");
  if (!section || !window.fetch || !window.DOMParser) { return; }
  var seconds = parseInt(section.getAttribute("data-refresh"), 10);
  if (!(seconds > 0)) { return; }

  function busy(current) {
    // Do not swap the table under an operator about to press Disconnect.
    var active = document.activeElement;
    return active && active !== document.body && current.contains(active);
  }

  function refresh() {
    var current = document.getElementById("live");
    if (document.hidden || !current || busy(current)) { return; }
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.redirected || !response.ok) {
          // Signed out (expired) or an error: let the full page say so.
          window.location.reload();
          return null;
        }
        return response.text();
      })
      .then(function (html) {
        if (html === null) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        var now = document.getElementById("live");
        if (fresh && now && !busy(now)) { now.replaceWith(document.importNode(fresh, true)); }
      })
      .catch(function () { /* the network blinked: try again next time */ });
  }

  window.setInterval(refresh, seconds * 1000);
}());

/* The console's only script: refresh a region in place (the overview) without a full
   reload. A region names its fragment URL in data-refresh and the period in data-every
   (seconds); it is skipped while the tab is hidden or the user is inside the region. */
(function () {
  "use strict";
  function refresh(region) {
    if (document.hidden || region.contains(document.activeElement)) return;
    fetch(region.dataset.refresh, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok && !r.redirected ? r.text() : null; })
      .then(function (html) { if (html !== null) region.innerHTML = html; })
      .catch(function () { /* offline for a moment: the next round tries again */ });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh]").forEach(function (region) {
      var every = Math.max(5, parseInt(region.dataset.every || "30", 10)) * 1000;
      setInterval(function () { refresh(region); }, every);
    });
  });
})();

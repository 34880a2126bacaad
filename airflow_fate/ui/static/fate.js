// FATE monitor pages: follow Airflow's colour theme and refresh live regions in place.
// The server renders everything; this script only re-fetches the page (with the same
// cookie) and swaps the element marked data-refresh. No build step, no dependencies.
(function () {
  "use strict";

  // Airflow's UI keeps its theme in localStorage("theme"): light, dark or system. The
  // pages are same-origin iframes, so they can read it and match.
  try {
    var mode = window.localStorage.getItem("theme");
    var dark = mode === "dark" ||
      ((mode === null || mode === "system") &&
        window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches);
    if (dark) document.documentElement.setAttribute("data-theme", "dark");
  } catch (e) { /* storage blocked: stay light */ }

  // A panel marked data-load="URL" is replaced by the element with the same id in the
  // page at URL (server-rendered, so every name in it is already escaped).
  function loadPanels(root) {
    var panels = root.querySelectorAll("[data-load]");
    Array.prototype.forEach.call(panels, function (panel) {
      fetch(panel.getAttribute("data-load"), { credentials: "same-origin", cache: "no-store" })
        .then(function (resp) {
          if (!resp.ok) throw new Error("HTTP " + resp.status);
          return resp.text();
        })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = panel.id && doc.getElementById(panel.id);
          if (!fresh) throw new Error("no panel in the answer");
          panel.replaceWith(fresh);
        })
        .catch(function (err) {
          var note = document.createElement("p");
          note.className = "notice";
          note.textContent = "Could not load this panel (" + err.message + ").";
          panel.appendChild(note);
        });
    });
  }

  function start() {
    loadPanels(document);
    var region = document.querySelector("[data-refresh]");
    if (!region) return;
    var every = Math.max(1, Number(region.getAttribute("data-refresh")) || 5) * 1000;

    function tick() {
      fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
        .then(function (resp) {
          if (resp.status === 401 || resp.status === 403) {
            region.insertAdjacentHTML("afterbegin",
              '<p class="notice">Signed out: live updates stopped. Reload after signing in.</p>');
            return null;
          }
          return resp.ok ? resp.text() : "";
        })
        .then(function (html) {
          if (html === null) return;
          if (html) {
            var doc = new DOMParser().parseFromString(html, "text/html");
            var fresh = doc.querySelector("[data-refresh]") || doc.querySelector("#content");
            if (fresh) {
              region.replaceWith(fresh);
              region = fresh;
              loadPanels(fresh);
            }
          }
          if (region.hasAttribute("data-refresh")) window.setTimeout(tick, every);
        })
        .catch(function () { window.setTimeout(tick, every * 2); });
    }
    window.setTimeout(tick, every);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

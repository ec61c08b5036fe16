// Slovo Tools dashboard: the only script the pages load (CSP: script-src 'self').
// It never inserts text as HTML that the server did not render and escape: live updates fetch
// the same page again and move the server's elements over.
"use strict";

(function () {
  // Times: the server writes UTC; show them in the browser's time zone.
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d.getTime())) {
        el.title = el.textContent;
        el.textContent = d.toLocaleString();
      }
    });
  }

  // Times entered in local time: tell the server this zone's offset at each of those moments
  // (an offset field names its time field with data-tz-offset-for, else the form's first one),
  // so a range across a daylight-saving change is read right at both ends.
  function timeZoneOnSubmit() {
    document.querySelectorAll("form").forEach(function (form) {
      var offsets = form.querySelectorAll("[data-tz-offset]");
      if (offsets.length === 0) return;
      form.addEventListener("submit", function () {
        offsets.forEach(function (offset) {
          var forId = offset.getAttribute("data-tz-offset-for");
          var local = forId ? document.getElementById(forId) : form.querySelector("input[type=datetime-local]");
          var at = local && local.value ? new Date(local.value) : new Date();
          offset.value = String(at.getTimezoneOffset());
        });
      });
    });
  }

  // Live regions: on a change signal, fetch this page again and swap each [data-live] element.
  function live() {
    var main = document.querySelector("main[data-events]");
    var regions = document.querySelectorAll("[data-live][id]");
    if (!main || regions.length === 0 || !window.EventSource) return;
    var status = document.getElementById("live-status");
    var busy = false;
    var again = false;
    function refresh() {
      if (busy) { again = true; return; }
      busy = true;
      fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html");
          document.querySelectorAll("[data-live][id]").forEach(function (el) {
            var next = fresh.getElementById(el.id);
            if (next) {
              el.replaceWith(document.adoptNode(next));
            }
          });
          localTimes(document);
          if (status) status.textContent = "Updated " + new Date().toLocaleTimeString();
        })
        .catch(function () {
          if (status) status.textContent = "Could not refresh; reload the page.";
        })
        .finally(function () {
          busy = false;
          if (again) { again = false; refresh(); }
        });
    }
    var source = null;
    function connect() {
      source = new EventSource(main.getAttribute("data-events"));
      source.addEventListener("change", refresh);
      source.addEventListener("open", function () {
        document.documentElement.setAttribute("data-live-connected", "yes");
      });
    }
    // A page left open in the back-forward cache must not keep its stream: browsers allow a
    // few connections per server, and idle streams would hold them.
    window.addEventListener("pagehide", function () {
      if (source) { source.close(); source = null; }
      document.documentElement.removeAttribute("data-live-connected");
    });
    window.addEventListener("pageshow", function (e) {
      if (e.persisted && !source) { connect(); refresh(); }
    });
    connect();
  }

  function start() {
    localTimes(document);
    timeZoneOnSubmit();
    live();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

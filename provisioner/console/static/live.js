/* Live refresh for the console's overview, jobs and reconcile pages.
 *
 * A page opts in with data-live-every="SECONDS" on <main>; its regions to refresh carry
 * data-live and an id. Every few seconds this fetches the same URL, parses the answer
 * and swaps in the regions of the same id. Without JavaScript the pages are the same,
 * reloaded by hand. No inline script, no eval, no framework: the console's CSP
 * (default-src 'self') allows this file and nothing else.
 *
 * It waits while the tab is hidden or focus is inside a region (a click on a Retry
 * button is never swapped away), stops when the session has ended (the answer is the
 * sign-in page) or the fetched page no longer asks for refreshing (a finished pass),
 * and offers a Pause button.
 */
(function () {
  "use strict";
  var main = document.querySelector("main[data-live-every]");
  if (!main || !window.fetch || !window.DOMParser) { return; }
  var every = Math.max(2, parseInt(main.getAttribute("data-live-every"), 10) || 5) * 1000;
  var paused = false, timer = null, busy = false;

  var bar = document.createElement("p");
  bar.className = "live-bar hint";
  var status = document.createElement("span");
  status.textContent = "Live: refreshed every " + every / 1000 + " s. ";
  var button = document.createElement("button");
  button.type = "button";
  button.className = "link";
  button.textContent = "Pause live refresh";
  bar.appendChild(status);
  bar.appendChild(button);
  main.insertBefore(bar, main.firstChild);

  function say(text) { status.textContent = text + " "; }

  function stop(text) {
    if (timer) { window.clearTimeout(timer); timer = null; }
    say(text);
    button.hidden = true;
    document.body.setAttribute("data-live-state", "stopped");
  }

  function focusInside() {
    var active = document.activeElement;
    return !!(active && active !== document.body && active.closest && active.closest("[data-live]"));
  }

  function swap(fresh) {
    var regions = document.querySelectorAll("[data-live][id]");
    for (var i = 0; i < regions.length; i++) {
      var next = fresh.getElementById(regions[i].id);
      if (next) { regions[i].replaceWith(document.importNode(next, true)); }
    }
  }

  function tick() {
    timer = null;
    if (paused) { return; }
    if (document.hidden || focusInside() || busy) { schedule(); return; }
    busy = true;
    var here = window.location.pathname + window.location.search;
    window.fetch(here, { credentials: "same-origin", headers: { "Accept": "text/html" }, cache: "no-store" })
      .then(function (response) {
        var landed = new URL(response.url, window.location.href);
        if (landed.pathname !== window.location.pathname) { throw new Error("signed-out"); }
        if (!response.ok) { throw new Error("status " + response.status); }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        swap(fresh);
        var freshMain = fresh.querySelector("main");
        document.body.setAttribute("data-live-updated", String(Date.now()));
        if (!freshMain || !freshMain.hasAttribute("data-live-every")) {
          stop("Live refresh ended: nothing more will change here.");
          return;
        }
        say("Live: updated at " + new Date().toLocaleTimeString() + ".");
        schedule();
      })
      .catch(function (error) {
        if (error && error.message === "signed-out") {
          stop("Live refresh stopped: the session has ended; reload the page to sign in again.");
        } else {
          say("Live: could not refresh (" + (error && error.message || "network error") + "); trying again.");
          schedule();
        }
      })
      .then(function () { busy = false; });
  }

  function schedule() {
    if (!timer && !paused) { timer = window.setTimeout(tick, every); }
  }

  button.addEventListener("click", function () {
    paused = !paused;
    button.textContent = paused ? "Resume live refresh" : "Pause live refresh";
    if (paused) {
      if (timer) { window.clearTimeout(timer); timer = null; }
      say("Live refresh paused.");
    } else {
      tick();
    }
  });
  document.body.setAttribute("data-live-state", "on");
  schedule();
}());

// The Resync State Data tools: the district's (select all, plan preview,
// confirm, live status per object) and the state's (live outcome per district),
// both fed by live.js's statesync:step and statesync:finished events.
(function () {
  "use strict";

  // Put a status dot of `colour` in `cell`, followed by `label` when given.
  function setDot(cell, colour, label) {
    cell.textContent = "";
    const dot = document.createElement("span");
    dot.className = "status-dot status-" + colour;
    dot.title = colour;
    dot.textContent = "●";
    cell.appendChild(dot);
    if (label) {
      const text = document.createElement("span");
      text.className = "outcome";
      text.textContent = label;
      cell.append(" ", text);
    }
  }

  const title = (word) => word.charAt(0).toUpperCase() + word.slice(1);

  // The one place a time is written for the user: the server's text (core.timefmt.when:
  // the district's zone, named), so a live row reads as the same row after a reload.
  function when(text) {
    return text || "—";
  }

  const tool = document.getElementById("resync-tool");
  if (tool) districtTool(tool);
  const districts = document.getElementById("districts");
  if (districts) stateTool(districts);
  document.querySelectorAll("[data-poll]").forEach(poll);

  // A block of a page kept live by fetching the page again every data-poll ms and taking
  // the block with the same id from it (the Agent Queue, a request's progress): the same
  // view, so the same rights and markup. It stops once the block says data-done.
  function poll(block) {
    const every = Number(block.dataset.poll) || 2000;
    async function again() {
      const current = document.getElementById(block.id);
      if (!current || current.dataset.done) return;
      if (!document.hidden) {
        try {
          const response = await fetch(window.location.href, { credentials: "same-origin" });
          if (response.ok) {
            const fresh = new DOMParser().parseFromString(await response.text(), "text/html").getElementById(block.id);
            if (fresh) {
              current.replaceWith(fresh);
              document.body.dataset.polled = String(Number(document.body.dataset.polled || 0) + 1);
            }
          }
        } catch (error) {
          // The server is away for a moment: try again at the next tick.
        }
      }
      setTimeout(again, every);
    }
    setTimeout(again, every);
  }

  function districtTool(root) {
    const picks = () => Array.from(root.querySelectorAll("input.pick:not([disabled])"));
    const selectAll = document.getElementById("select-all");
    const checkDeps = document.getElementById("check-dependencies");
    const full = document.getElementById("full");
    const plan = document.getElementById("plan");

    function chosen() {
      return picks().filter((c) => c.checked).map((c) => c.value);
    }

    // The plan the server would run for the boxes ticked now: {order} or {error}; null
    // when nothing is ticked.
    async function planned() {
      const all = selectAll.checked;
      full.value = all ? "1" : "0";
      const names = chosen();
      if (!all && names.length === 0) return null;
      const q = new URLSearchParams({ year: root.dataset.year, full: all ? "1" : "0", check_dependencies: checkDeps.checked ? "1" : "0" });
      names.forEach((n) => q.append("objects", n));
      const response = await fetch(root.dataset.planUrl + "?" + q.toString(), { credentials: "same-origin" });
      return response.json();
    }

    async function preview() {
      const body = await planned();
      plan.textContent = body === null ? "" : body.error ? body.error : "Will run, in this order: " + body.order.join(" → ");
      plan.className = body && body.error ? "errornote" : "";
    }

    selectAll.addEventListener("change", () => {
      picks().forEach((c) => (c.checked = selectAll.checked));
      preview();
    });
    checkDeps.addEventListener("change", preview);
    picks().forEach((c) => c.addEventListener("change", () => {
      if (!c.checked) selectAll.checked = false;
      preview();
    }));
    const form = document.getElementById("send-form");
    const note = document.getElementById("send-result");
    const send = document.getElementById("send");
    let sending = false;
    function say(text, error) {
      note.textContent = text;
      note.className = error ? "errornote" : "success";
    }
    form.addEventListener("submit", async (event) => {
      // Send without leaving the page: the rows then turn Queued, Gray and Green live.
      event.preventDefault();
      if (sending) return; // a second click while the first is asked or sent
      sending = true;
      send.disabled = true;
      try {
        // Ask with what will really run (Check Dependencies adds parents), by name.
        const body = await planned();
        if (body === null) return say("Tick at least one object, or Select all for a full resync.", true);
        if (body.error) return say(body.error, true);
        const count = body.order.length;
        const what = (selectAll.checked ? "a full resync, " : "") + count + " object" + (count === 1 ? "" : "s");
        if (!window.confirm("Send " + what + ": " + body.order.join(", ") + "?")) return;
        const response = await fetch(window.location.pathname, {
          method: "POST",
          body: new FormData(form),
          headers: { Accept: "application/json" },
          credentials: "same-origin",
        });
        const sent = await response.json();
        say(sent.error || sent.message, Boolean(sent.error));
        if (!sent.error) {
          // Sent: untick, so the next click cannot send the same again by mistake.
          selectAll.checked = false;
          picks().forEach((c) => (c.checked = false));
          plan.textContent = "";
          root.refreshProgress(); // its objects turn Queued, and its progress shows
        }
      } catch (error) {
        say("Not sent: " + error.message, true);
      } finally {
        sending = false;
        send.disabled = false;
      }
    });

    const errorLog = (request, objectId) =>
      root.dataset.errorLog + "?" + new URLSearchParams({ step__request__id__exact: request, sync_object__id__exact: objectId }).toString();

    // A row's cells for its latest batch step, as the server draws them (tool.views.row_state).
    function showStep(step) {
      if (step.selective) return; // a Selective Sync has its own history, never the object's row
      const row = root.querySelector('tr[data-object="' + step.object + '"]');
      if (!row) return;
      // A fetched state may answer after a newer push: never go back to an older step,
      // nor from a step's final colour back to its Gray.
      const shown = Number(row.dataset.step || 0);
      if (step.step < shown || (step.step === shown && step.colour === "gray" && row.dataset.colour !== "gray")) return;
      row.dataset.step = step.step;
      row.dataset.request = step.request;
      row.dataset.colour = step.colour;
      const queued = step.status === "pending" || step.status === "queued";
      const results = row.querySelector(".results");
      const status = row.querySelector(".status");
      results.classList.remove("never");
      row.querySelector(".last").textContent = when(step.started_at_text);
      const label = queued ? "Queued" : step.status === "failed" ? "Failed" : step.status === "running" ? "Running" : title(step.colour);
      if (queued) {
        results.textContent = "Queued";
        results.title = "";
        setDot(status, "queued", label);
        return;
      }
      results.innerHTML = 'Processed: <span class="processed"></span> Errors: <span class="errors"></span>';
      results.querySelector(".processed").textContent = step.processed;
      results.querySelector(".errors").textContent = step.errors;
      results.title = step.processed - step.errors + " records sent";
      setDot(status, step.colour, label);
      const done = !["pending", "queued", "running"].includes(step.status);
      if (done && step.errors > 0 && (step.colour === "yellow" || step.colour === "red")) {
        // A Yellow or Red result leads to its errors: the Error Log of this object and request.
        const url = errorLog(step.request, row.dataset.objectId);
        for (const cell of [results, status]) {
          const link = document.createElement("a");
          link.href = url;
          link.append(...cell.childNodes);
          cell.appendChild(link);
        }
      }
    }

    // The progress block (objects done, records, time left, the finish summary) is drawn
    // by the server: fetched with the rows, at most once a second while pushes arrive.
    const progress = document.getElementById("progress");
    let fetching = null;
    let again = false;
    async function refresh() {
      if (fetching) {
        again = true;
        return fetching;
      }
      fetching = (async () => {
        const url = new URL("state/", window.location.href);
        url.search = new URLSearchParams({ year: root.dataset.year }).toString();
        const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (!response.ok) return;
        const body = await response.json();
        body.steps.forEach(showStep);
        progress.innerHTML = body.progress_html;
        document.body.dataset.resynced = String(Number(document.body.dataset.resynced || 0) + 1);
      })();
      try {
        await fetching;
      } catch (error) {
        // A lost fetch is made good by the next push or socket (re)open.
      } finally {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        fetching = null;
        if (again) {
          again = false;
          refresh();
        }
      }
    }
    root.refreshProgress = refresh; // the send handler asks once its request is in

    document.addEventListener("statesync:step", (event) => {
      if (String(event.detail.district) !== root.dataset.district || event.detail.selective) return;
      showStep(event.detail);
      refresh();
    });
    document.addEventListener("statesync:finished", (event) => {
      if (String(event.detail.district) === root.dataset.district) refresh();
    });
    // The socket (re)opened: fetch what the rows show now, pushes it missed included.
    document.addEventListener("statesync:resync", refresh);
  }

  // One row per district: its latest request turns Gray while its steps run,
  // then takes the request's outcome. Only state users have this page, and
  // only their socket carries state requests' steps.
  function stateTool(table) {
    const rowOf = (district) => table.querySelector('tr[data-district="' + district + '"]');

    // Ask with what will be sent, refuse an empty choice before asking, and send once.
    const form = document.getElementById("state-form");
    const send = document.getElementById("send-state");
    form.addEventListener("submit", (event) => {
      const codes = Array.from(form.querySelectorAll('input[name="districts"]:checked')).map((c) => c.value);
      const objects = Array.from(form.querySelector("#state-objects").selectedOptions).map((o) => o.value);
      const full = form.querySelector("#state-full").checked;
      const note = document.getElementById("state-send-result");
      let problem = "";
      if (codes.length === 0) problem = "Tick at least one district.";
      else if (!full && objects.length === 0) problem = "Choose objects, or tick Full resync.";
      const what = full ? "a full resync" : objects.join(", ");
      const districts = codes.length + " district" + (codes.length === 1 ? "" : "s") + " (" + codes.join(", ") + ")";
      if (problem || send.disabled || !window.confirm("Send a state resync request of " + what + " to " + districts + "? They cannot stop it.")) {
        event.preventDefault();
        note.textContent = problem;
        note.className = problem ? "errornote" : "";
        return;
      }
      send.disabled = true; // the page is leaving: a second click sends nothing
    });

    function follow(row, request, statusText) {
      const shown = Number(row.dataset.request || 0);
      if (request < shown || request <= Number(row.dataset.finished || 0)) return false;
      const cell = row.querySelector(".request");
      if (request > shown) {
        // A request sent since the page loaded (from elsewhere): name it, its details are a reload away.
        cell.innerHTML = 'Resync <span class="request-id"></span> (<span class="request-status"></span>)';
        cell.querySelector(".request-id").textContent = request;
        row.dataset.request = request;
      }
      cell.querySelector(".request-status").textContent = statusText;
      return true;
    }

    document.addEventListener("statesync:step", (event) => {
      const step = event.detail;
      const row = rowOf(step.district);
      if (row && follow(row, step.request, "Running")) setDot(row.querySelector(".status"), "gray", "Running");
    });
    function finished(done) {
      const row = rowOf(done.district);
      if (!row || !follow(row, done.request, "Finished")) return;
      row.dataset.finished = done.request;
      setDot(row.querySelector(".status"), done.outcome, title(done.outcome));
    }
    document.addEventListener("statesync:finished", (event) => finished(event.detail));
    // The socket (re)opened: fetch each district's latest request, pushes it missed included.
    document.addEventListener("statesync:resync", async () => {
      const response = await fetch(new URL("state/", window.location.href), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) return;
      const body = await response.json();
      for (const latest of body.districts) {
        if (latest.status === "finished") {
          finished(latest);
        } else if (latest.status === "running") {
          const row = rowOf(latest.district);
          if (row && follow(row, latest.request, "Running")) setDot(row.querySelector(".status"), "gray", "Running");
        }
      }
      document.body.dataset.resynced = String(Number(document.body.dataset.resynced || 0) + 1);
    });
  }
})();
